// The gallery page: live counters, cards merged in as tasks change, the create panel.

import { announce, paths, renewSession } from "./api.js";
import { setUpCreate } from "./create.js";
import { startLive } from "./live.js";

const config = JSON.parse(document.getElementById("gallery-config").textContent);

function cardsUrl() {
  const query = new URLSearchParams();
  if (config.status) query.set("status", config.status);
  if (config.worker) query.set("worker", config.worker);
  const text = query.toString();
  return text ? `${paths.cards}?${text}` : paths.cards;
}

/**
 * Merge freshly rendered cards into the grid: a card whose version did not
 * change keeps its node (its image stays loaded, its focus stays put); new
 * and changed cards take the server's markup.
 */
function mergeGrid(grid, fresh) {
  const current = new Map([...grid.children].map((card) => [card.dataset.uuid, card]));
  let finished = 0;
  const nodes = [...fresh.children].map((card) => {
    const old = current.get(card.dataset.uuid);
    if (old && old.dataset.version === card.dataset.version) return old;
    if (card.dataset.status === "done") finished += 1;
    card.classList.add("card-fresh");
    return card;
  });
  grid.replaceChildren(...nodes);
  return finished;
}

async function fetchCards() {
  const options = { cache: "no-store", headers: { Accept: "text/html" } };
  let response = await fetch(cardsUrl(), options);
  // Private reads: the session cookie expired while the page stayed open.
  if (response.status === 401 && (await renewSession())) response = await fetch(cardsUrl(), options);
  return response;
}

async function refreshCards() {
  let response;
  try {
    response = await fetchCards();
  } catch {
    return; // the server is away: the counters show it, the next change retries
  }
  if (!response.ok) return;
  const template = document.createElement("template");
  template.innerHTML = await response.text();
  const fresh = template.content.querySelector("[data-results]");
  const results = document.querySelector("[data-results]");
  if (!fresh || !results) return;
  const grid = results.querySelector("[data-grid]");
  const freshGrid = fresh.querySelector("[data-grid]");
  if (!grid || !freshGrid) {
    results.replaceWith(fresh); // to or from the empty state: nothing to keep
    return;
  }
  const finished = mergeGrid(grid, freshGrid);
  for (const part of ["[data-results-head]", "[data-results-foot]"]) {
    results.querySelector(part).replaceWith(fresh.querySelector(part));
  }
  results.dataset.total = fresh.dataset.total;
  if (finished) announce(`${finished} new fractal${finished === 1 ? "" : "s"} finished.`);
}

function setUpCreateToggle() {
  const toggle = document.querySelector("[data-create-toggle]");
  const panel = document.getElementById("create-panel");
  if (!toggle || !panel) return;
  function show(open) {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) panel.querySelector("input, select")?.focus();
  }
  toggle.addEventListener("click", () => show(panel.hidden));
  // The empty gallery's "Create some" (it may arrive later, with a live refresh).
  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-create-open]")) show(true);
  });
}

function showFlash() {
  let text = null;
  try {
    text = sessionStorage.getItem("faafo.flash");
    sessionStorage.removeItem("faafo.flash");
  } catch {
    return;
  }
  if (!text) return;
  const note = document.createElement("p");
  note.className = "notice flash";
  note.setAttribute("role", "status");
  note.textContent = text;
  document.querySelector(".intro")?.after(note);
}

const pollNow = startLive({ onChange: config.live ? refreshCards : null });
setUpCreateToggle();
setUpCreate(config, async () => {
  if (config.live) await refreshCards();
  pollNow();
});
showFlash();
