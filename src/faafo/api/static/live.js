// Live counters and the per-worker summary, polled from GET /v1/stats.
// Polling (not server-sent events) keeps every API process stateless and works
// through any proxy; it pauses while the tab is hidden.

import { api, ApiError, announce, askForToken, paths, pathOf } from "./api.js";

const INTERVAL_MS = 2000;

function seconds(value) {
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

function renderWorkers(list, stats) {
  const now = Date.parse(stats.generated_at);
  const items = stats.workers.map((w) => {
    const item = element("li", w.running ? "worker worker-busy" : "worker");
    item.append(element("span", "worker-name", w.name));
    let facts = `${w.running} rendering · ${w.done} done`;
    if (w.failed) facts += ` · ${w.failed} failed`;
    facts += ` · ${w.done_last_minute} in the last minute`;
    item.append(element("span", "worker-facts", facts));
    const seen = w.last_seen ? seconds((now - Date.parse(w.last_seen)) / 1000) : "never";
    item.append(element("span", "worker-seen", `last seen ${seen}`));
    const done = w.recent.filter((t) => t.status === "done");
    if (done.length) {
      const strip = element("span", "worker-recent");
      for (const task of done) {
        const link = element("a");
        link.href = pathOf(paths.view, task.uuid);
        const img = element("img");
        img.src = pathOf(paths.thumbnail, task.uuid);
        img.alt = `fractal ${task.uuid.slice(0, 8)}`;
        img.width = 28;
        img.height = 28;
        link.append(img);
        strip.append(link);
      }
      item.append(strip);
    }
    return item;
  });
  if (!items.length) items.push(element("li", "worker worker-none", "No worker has taken a task yet."));
  list.replaceChildren(...items);
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

function offerToken(live, message) {
  if (live.querySelector("[data-live-token]")) return;
  const button = element("button", "button ghost small", "Enter a token for live updates");
  button.type = "button";
  button.dataset.liveToken = "";
  button.addEventListener("click", async () => {
    if (await askForToken(message)) {
      button.remove();
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
      if (error instanceof ApiError && error.auth && live) offerToken(live, error.message);
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
