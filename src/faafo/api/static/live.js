// Live counters and the per-worker summary, polled from GET /v1/stats.
// Polling (not server-sent events) keeps every API process stateless and works
// through any proxy; it pauses while the tab is hidden.

import { api, ApiError, announce, askForToken, paths, pathOf, saveToken } from "./api.js";

const INTERVAL_MS = 2000;

/** How long ago, worded as the server words it on the first paint (pages.ago). */
export function ago(value) {
  if (value < 1) return "just now";
  if (value < 60) return `${Math.round(value)} s ago`;
  if (value < 3600) return `${Math.round(value / 60)} min ago`;
  return `${Math.round(value / 3600)} h ago`;
}

function rate(value) {
  return value >= 10 ? value.toFixed(0) : String(Number(value.toFixed(1)));
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function utc(moment) {
  // "2026-12-01 19:38:15 UTC", as the server's title attribute says it.
  return `${moment.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

/** The same markup as _workers.html: one link per worker, decorative thumbnails. */
function renderWorkers(list, stats) {
  const now = Date.parse(stats.generated_at);
  const items = stats.workers.map((w) => {
    const item = element("li", w.running ? "worker worker-busy" : "worker");
    const name = element("a", "worker-name", w.name);
    name.href = `${paths.gallery}?${new URLSearchParams({ worker: w.name })}`;
    name.append(element("span", "visually-hidden", ": show its fractals"));
    item.append(name);
    const done = w.recent.filter((t) => t.status === "done");
    if (done.length) {
      const strip = element("span", "worker-recent");
      strip.setAttribute("aria-hidden", "true");
      for (const task of done) {
        const link = element("a");
        link.href = pathOf(paths.view, task.uuid);
        link.tabIndex = -1;
        const img = element("img");
        img.src = pathOf(paths.thumbnail, task.uuid);
        img.alt = "";
        img.width = 22;
        img.height = 22;
        link.append(img);
        strip.append(link);
      }
      item.append(strip);
    }
    let facts = `${w.running} in hand · ${w.done} done`;
    if (w.failed) facts += ` · ${w.failed} failed`;
    facts += ` · ${w.done_last_minute}/min · last seen `;
    const line = element("span", "worker-facts", facts);
    if (w.last_seen) {
      const seen = new Date(w.last_seen);
      const time = element("time", "", ago((now - seen.getTime()) / 1000));
      time.dateTime = w.last_seen;
      time.title = utc(seen);
      line.append(time);
    } else {
      line.append("never");
    }
    item.append(line);
    return item;
  });
  if (!items.length) items.push(element("li", "worker worker-none", "Workers appear here once they take a task."));
  list.replaceChildren(...items);
  const count = document.querySelector("[data-workers-count]");
  if (count) count.textContent = String(stats.workers.length);
}

function render(stats) {
  for (const [status, n] of Object.entries(stats.counts)) {
    const node = document.querySelector(`[data-count="${status}"]`);
    if (node) node.textContent = String(n);
  }
  const perMinute = document.querySelector('[data-stat="per_minute"]');
  if (perMinute) perMinute.textContent = rate(stats.throughput.per_minute);
  const depth = document.querySelector('[data-stat="queue_depth"]');
  if (depth) depth.textContent = stats.queue_depth === null ? "–" : String(stats.queue_depth);
  const workers = document.querySelector("[data-workers]");
  if (workers) renderWorkers(workers, stats);
}

function offerToken(live, message, poll) {
  if (live.querySelector("[data-live-token]")) return;
  const button = element("button", "button ghost small", "Enter a token for live updates");
  button.type = "button";
  button.dataset.liveToken = "";
  button.addEventListener("click", async () => {
    const token = await askForToken(message);
    if (token) {
      saveToken(token);
      button.remove();
      poll();
    }
  });
  live.append(button);
}

/**
 * Poll the stats and redraw; ``onChange(stats)`` runs whenever the counts
 * moved (a task was created, started, finished, failed or deleted).
 * Returns a function that polls at once (after the page itself changed something).
 */
export function startLive({ onChange } = {}) {
  const live = document.querySelector("[data-live-stats]");
  // The counts the page was rendered with: a change before the first poll counts too.
  const shown = {};
  for (const node of document.querySelectorAll("[data-count]")) {
    shown[node.dataset.count] = Number(node.textContent);
  }
  let signature = JSON.stringify(shown);
  let timer = null;
  let running = false;

  async function poll() {
    clearTimeout(timer);
    if (running) return;
    running = true;
    try {
      const stats = await api("GET", paths.stats, undefined, { interactive: false });
      live?.querySelector("[data-live-token]")?.remove();
      live?.classList.remove("live-stale");
      render(stats);
      const next = JSON.stringify(stats.counts);
      if (next !== signature && onChange) {
        await onChange(stats);
      }
      signature = next;
    } catch (error) {
      live?.classList.add("live-stale");
      if (!(error instanceof ApiError)) {
        // A bug, not the server being away: say so where developers and tests look.
        console.error("live update failed:", error);
      } else if (error.auth && live) {
        offerToken(live, error.message, poll);
      }
    } finally {
      running = false;
      if (!document.hidden) timer = setTimeout(poll, INTERVAL_MS);
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) poll();
  });
  poll();
  return () => poll();
}

export { announce };
