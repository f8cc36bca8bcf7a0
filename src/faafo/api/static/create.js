// The create form: the CLI's options, with the CLI's random defaults for empty fields.

import { api, paths } from "./api.js";

function uuid4() {
  // crypto.randomUUID exists only on secure origins; plain-HTTP deployments need this.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function randomInt(low, high) {
  const [a, b] = [Math.ceil(Math.min(low, high)), Math.floor(Math.max(low, high))];
  return a + Math.floor(Math.random() * (b - a + 1));
}

function randomFloat(low, high) {
  return low + Math.random() * (high - low);
}

class FormProblem extends Error {
  constructor(message, field) {
    super(message);
    this.field = field;
  }
}

/**
 * A field's number, or null when empty. The form is novalidate (its own
 * messages are clearer than the browser's), so the input's ``max`` is
 * enforced here too.
 */
function number(form, name, { integer = false, minimum = null } = {}) {
  const input = form.elements[name];
  const text = input.value.trim();
  if (text === "") return null;
  const value = Number(text);
  const label = form.querySelector(`label[for="${input.id}"]`)?.textContent.trim() || name;
  const maximum = input.max === "" ? null : Number(input.max);
  if (!Number.isFinite(value)) throw new FormProblem(`${label}: not a number`, input);
  if (integer && !Number.isInteger(value)) throw new FormProblem(`${label}: a whole number, please`, input);
  if (minimum !== null && value < minimum) throw new FormProblem(`${label}: at least ${minimum}`, input);
  if (maximum !== null && value > maximum) throw new FormProblem(`${label}: at most ${maximum}`, input);
  return value;
}

/** Read the form into a list of tasks, as `faafo create` would build them. */
export function tasksFromForm(form, config) {
  const integers = new Set(config.integers);
  const fixed = {};
  const bounds = {};
  for (const name of Object.keys(config.ranges)) {
    const integer = integers.has(name);
    fixed[name] = number(form, name, { integer, minimum: integer ? 1 : null });
    const [low, high] = config.ranges[name];
    bounds[name] = [
      number(form, `min_${name}`, { integer }) ?? low,
      number(form, `max_${name}`, { integer }) ?? high,
    ];
  }
  const minTasks = number(form, "min_tasks", { integer: true, minimum: 1 }) ?? config.tasks_range[0];
  const maxTasks = number(form, "max_tasks", { integer: true, minimum: 1 }) ?? config.tasks_range[1];
  const count = number(form, "tasks", { integer: true, minimum: 1 }) ?? randomInt(minTasks, maxTasks);
  const cReal = number(form, "c_real");
  const cImag = number(form, "c_imag");
  if ((cReal === null) !== (cImag === null)) {
    const empty = cReal === null ? form.elements.c_real : form.elements.c_imag;
    throw new FormProblem("Give both parts of c, or neither.", empty);
  }
  const seed = number(form, "seed", { integer: true, minimum: 0 });
  const batch = uuid4();
  const tasks = [];
  for (let i = 0; i < count; i += 1) {
    const task = { kind: form.elements.kind.value, palette: form.elements.palette.value, batch };
    for (const name of Object.keys(config.ranges)) {
      const [low, high] = bounds[name];
      task[name] = fixed[name] ?? (integers.has(name) ? randomInt(low, high) : randomFloat(low, high));
    }
    if (cReal !== null) Object.assign(task, { c_real: cReal, c_imag: cImag });
    if (seed !== null) task.seed = seed;
    tasks.push(task);
  }
  return tasks;
}

/** Wire the form; ``afterCreate`` refreshes the page's live parts. */
export function setUpCreate(config, afterCreate) {
  const form = document.querySelector("[data-create-form]");
  if (!form) return;
  const status = form.querySelector("[data-create-status]");
  const submit = form.querySelector("[data-create-submit]");

  function say(text, kind = "") {
    status.textContent = text;
    status.className = `form-status ${kind}`;
  }

  form.addEventListener("input", (event) => event.target.removeAttribute("aria-invalid"));
  form.addEventListener("reset", () => say(""));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let tasks;
    try {
      tasks = tasksFromForm(form, config);
    } catch (problem) {
      if (!(problem instanceof FormProblem)) throw problem;
      problem.field.setAttribute("aria-invalid", "true");
      problem.field.focus();
      say(problem.message, "error");
      return;
    }
    submit.disabled = true;
    say(`Creating ${tasks.length} fractal${tasks.length === 1 ? "" : "s"}…`);
    let created = 0;
    try {
      for (let start = 0; start < tasks.length; start += config.max_tasks) {
        const answer = await api("POST", paths.create, tasks.slice(start, start + config.max_tasks));
        created += answer.num_results;
      }
      const where = config.live ? "They appear below as the workers finish them." : "See them on the newest page.";
      say(`Created ${created} fractal${created === 1 ? "" : "s"}. ${where}`, "ok");
      await afterCreate();
    } catch (error) {
      const done = created ? ` (${created} were created before this)` : "";
      say(`Not created: ${error.message}${done}`, "error");
    } finally {
      submit.disabled = false;
    }
  });
}
