// One fractal's page: explore by clicking (or with the keyboard), delete, and
// show the image as soon as a queued or running task finishes.

import { api, ApiError, paths, pathOf } from "./api.js";
import { startLive } from "./live.js";

const record = JSON.parse(document.getElementById("fractal-record").textContent);
const STEP = 0.02; // arrow keys move the marker by 2% of the image (10% with Shift)

/** The task that renders ``zoom`` times closer around the point at fractions (fx, fy). */
export function zoomedTask(parent, fx, fy, zoom, iterations) {
  // Column 0 is xa and the last column xb; row 0 (the top) is ya: see FractalSpec.
  const x = parent.xa + fx * (parent.xb - parent.xa);
  const y = parent.ya + fy * (parent.yb - parent.ya);
  const halfWidth = (parent.xb - parent.xa) / (2 * zoom);
  const halfHeight = (parent.yb - parent.ya) / (2 * zoom);
  const task = {
    width: parent.width,
    height: parent.height,
    iterations,
    xa: x - halfWidth,
    xb: x + halfWidth,
    ya: y - halfHeight,
    yb: y + halfHeight,
    kind: parent.kind,
    palette: parent.palette,
  };
  if (parent.kind === "julia") {
    if (parent.c_real !== null && parent.c_imag !== null) {
      Object.assign(task, { c_real: parent.c_real, c_imag: parent.c_imag });
    } else if (parent.seed !== null) {
      task.seed = parent.seed; // the same seed chooses the same c
    }
  }
  return task;
}

function setUpExplore() {
  const target = document.querySelector("[data-explore-target]");
  if (!target) return;
  const image = target.querySelector("[data-explore-image]");
  const marker = target.querySelector("[data-explore-marker]");
  const frame = target.querySelector("[data-explore-frame]");
  const coords = document.querySelector("[data-explore-coords]");
  const status = document.querySelector("[data-explore-status]");
  const form = document.querySelector("[data-explore-form]");
  const point = { fx: 0.5, fy: 0.5 };
  let busy = false;

  function describe(fx, fy) {
    const x = record.xa + fx * (record.xb - record.xa);
    const y = record.ya + fy * (record.yb - record.ya);
    return `x = ${x.toPrecision(8)}, y = ${y.toPrecision(8)}`;
  }

  let framed = { fx: 0.5, fy: 0.5 };
  /** The frame shows the window the zoom would render: 1/zoom of the image, centred on (fx, fy). */
  function placeFrame(fx, fy) {
    framed = { fx, fy };
    const share = 100 / Number(form.elements.zoom.value);
    frame.style.width = `${share}%`;
    frame.style.height = `${share}%`;
    frame.style.left = `${fx * 100 - share / 2}%`;
    frame.style.top = `${fy * 100 - share / 2}%`;
    frame.hidden = false;
  }

  function placeMarker() {
    marker.style.left = `${point.fx * 100}%`;
    marker.style.top = `${point.fy * 100}%`;
    coords.textContent = `Marker at ${describe(point.fx, point.fy)}`;
    placeFrame(point.fx, point.fy);
  }

  function fractions(event) {
    const box = image.getBoundingClientRect();
    return {
      fx: Math.min(1, Math.max(0, (event.clientX - box.left) / box.width)),
      fy: Math.min(1, Math.max(0, (event.clientY - box.top) / box.height)),
    };
  }

  async function zoomAt(fx, fy) {
    if (busy) return;
    const zoom = Number(form.elements.zoom.value);
    const iterations = Number(form.elements.iterations.value);
    if (!Number.isInteger(iterations) || iterations < 1) {
      form.elements.iterations.setAttribute("aria-invalid", "true");
      status.textContent = "Iterations: a whole number of at least 1, please.";
      status.className = "form-status error";
      form.elements.iterations.focus();
      return;
    }
    const task = zoomedTask(record, fx, fy, zoom, iterations);
    if (task.xa === task.xb || task.ya === task.yb) {
      status.textContent = "Cannot zoom further: the window is at the limit of floating-point precision.";
      status.className = "form-status error";
      return;
    }
    busy = true;
    target.setAttribute("aria-busy", "true");
    status.textContent = `Creating a ${zoom}× zoom around ${describe(fx, fy)}…`;
    status.className = "form-status";
    try {
      const created = await api("POST", paths.create, task);
      window.location.assign(pathOf(paths.view, created.uuid));
    } catch (error) {
      status.textContent = `Not created: ${error.message}`;
      status.className = "form-status error";
      busy = false;
      target.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (event) => event.preventDefault());
  form.elements.iterations.addEventListener("input", (event) => event.target.removeAttribute("aria-invalid"));
  frame.hidden = true;
  target.addEventListener("pointermove", (event) => {
    const { fx, fy } = fractions(event);
    coords.textContent = describe(fx, fy);
    placeFrame(fx, fy);
  });
  target.addEventListener("pointerleave", () => {
    if (document.activeElement === target) placeFrame(point.fx, point.fy);
    else frame.hidden = true;
  });
  target.addEventListener("blur", () => {
    frame.hidden = true;
  });
  form.elements.zoom.addEventListener("change", () => {
    if (!frame.hidden) placeFrame(framed.fx, framed.fy);
  });
  target.addEventListener("click", (event) => {
    // A click from Enter or Space has detail 0 and no pointer position: use the marker.
    if (event.detail === 0) {
      zoomAt(point.fx, point.fy);
    } else {
      const { fx, fy } = fractions(event);
      zoomAt(fx, fy);
    }
  });
  target.addEventListener("keydown", (event) => {
    const step = event.shiftKey ? STEP * 5 : STEP;
    const moves = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    point.fx = Math.min(1, Math.max(0, point.fx + move[0]));
    point.fy = Math.min(1, Math.max(0, point.fy + move[1]));
    placeMarker();
  });
  target.addEventListener("focus", placeMarker);
}

function setUpDelete() {
  const button = document.querySelector("[data-delete]");
  const dialog = document.getElementById("delete-dialog");
  if (!button || !dialog) return;
  button.addEventListener("click", () => {
    dialog.returnValue = "";
    dialog.showModal();
  });
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "delete") {
      button.focus();
      return;
    }
    button.disabled = true;
    try {
      await api("DELETE", pathOf(paths.record, record.uuid));
      try {
        sessionStorage.setItem("faafo.flash", `Deleted fractal ${record.uuid}.`);
      } catch {
        /* no flash message then */
      }
      window.location.assign(paths.gallery);
    } catch (error) {
      button.disabled = false;
      const note = document.createElement("p");
      note.className = "notice error";
      note.setAttribute("role", "alert");
      note.textContent = `Not deleted: ${error.message}`;
      button.closest(".actions").after(note);
      button.focus();
    }
  });
}

/** A queued or running fractal: reload when its state changes, so the image appears. */
function watchPending() {
  const pending = document.querySelector("[data-pending]");
  if (!pending || !["queued", "running"].includes(record.status)) return;
  async function check() {
    try {
      const now = await api("GET", pathOf(paths.record, record.uuid), undefined, { interactive: false });
      if (now.status !== record.status) {
        window.location.reload();
        return;
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        window.location.reload();
        return;
      }
    }
    setTimeout(check, 1000);
  }
  setTimeout(check, 1000);
}

startLive();
setUpExplore();
setUpDelete();
watchPending();
