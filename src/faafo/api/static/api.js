// Talking to the faafo API from the pages: JSON in and out, errors as readable
// messages, and a token asked for (never a silent failure) when the API answers
// 401 or 403. The token is kept in localStorage and sent as a Bearer token.

const TOKEN_KEY = "faafo.token";

export const paths = JSON.parse(document.getElementById("faafo-paths").textContent);

/** A URL template from the server with a fractal's uuid filled in. */
export function pathOf(template, uuid) {
  return template.replace("__uuid__", encodeURIComponent(uuid));
}

export class ApiError extends Error {
  constructor(message, status, { auth = false } = {}) {
    super(message);
    this.status = status;
    this.auth = auth;
  }
}

export function savedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: work without a saved token
  }
}

/** Keep a token the API accepted, for the next requests and pages. */
export function saveToken(token) {
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch {
    /* storage disabled: the token lasts for this request only */
  }
  showForgetButton();
}

export function forgetToken() {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* nothing saved */
  }
  showForgetButton();
  // With private reads the pages are read with a session cookie made from the token: end it too.
  if (paths.session) {
    fetch(paths.session, { method: "DELETE", cache: "no-store" }).catch(() => {
      /* the server is away: the cookie expires by itself */
    });
  }
}

function showForgetButton() {
  const button = document.querySelector("[data-forget-token]");
  if (button) button.hidden = !savedToken();
}

async function problemOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") return body.message;
  } catch {
    /* not JSON: fall through */
  }
  return `${response.status} ${response.statusText || "error"}`;
}

let pendingAsk = null;

/** Open the token dialog; resolves with the token, or null when the person cancels. */
export function askForToken(reason) {
  if (pendingAsk) return pendingAsk; // several requests refused at once: ask once
  const dialog = document.getElementById("token-dialog");
  const input = dialog.querySelector("input[name=token]");
  dialog.querySelector("[data-token-reason]").textContent = reason;
  input.value = "";
  dialog.returnValue = "";
  pendingAsk = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        pendingAsk = null;
        const token = input.value.trim();
        resolve(dialog.returnValue === "ok" && token ? token : null);
      },
      { once: true },
    );
  });
  dialog.showModal();
  input.focus();
  return pendingAsk;
}

/**
 * Call the API. ``interactive`` requests (a person clicked something) ask for
 * a token on 401/403 and retry with it; background ones (polling) throw an
 * ApiError with ``auth`` set instead of interrupting the person.
 */
export async function api(method, url, body, { interactive = true } = {}) {
  for (;;) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = savedToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError("The server cannot be reached; check that faafo is running.", 0);
    }
    if (response.status === 401 || response.status === 403) {
      const message = await problemOf(response);
      if (!interactive) throw new ApiError(message, response.status, { auth: true });
      const reason = token
        ? `The saved token was refused: ${message}. Enter another one.`
        : `The API answered: ${message}.`;
      const given = await askForToken(reason);
      if (!given) {
        throw new ApiError("Nothing was changed: this needs an API token.", response.status, {
          auth: true,
        });
      }
      saveToken(given);
      continue;
    }
    if (!response.ok) throw new ApiError(await problemOf(response), response.status);
    if (response.status === 204) return null;
    const type = response.headers.get("content-type") || "";
    return type.includes("json") ? response.json() : response.text();
  }
}

/**
 * Private reads: renew the reading-session cookie from the saved token (it
 * lasts 12 hours; images and the live cards need it). True when renewed.
 */
let renewing = null;
export function renewSession() {
  const token = savedToken();
  if (!token || !paths.session) return Promise.resolve(false);
  // Many images fail at once when the session ends: renew once for all of them.
  renewing ??= fetch(paths.session, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}` },
    cache: "no-store",
  })
    .then((response) => response.ok)
    .catch(() => false)
    .finally(() => {
      setTimeout(() => {
        renewing = null;
      }, 5000);
    });
  return renewing;
}

// An image refused because the reading session ended: renew it and load the image again, once.
if (document.body.hasAttribute("data-private-reads")) {
  document.addEventListener(
    "error",
    async (event) => {
      const img = event.target;
      if (!(img instanceof HTMLImageElement) || img.dataset.renewed) return;
      img.dataset.renewed = "1";
      if (await renewSession()) img.src = img.src;
    },
    true, // error events do not bubble: listen while they go down
  );
}

/** Say something to screen-reader users without moving their focus. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A new text node in a later frame is announced even when the text repeats.
  requestAnimationFrame(() => {
    region.textContent = text;
  });
}

// Cancel is a plain button, so that Enter in the token field submits the token.
document.querySelector("[data-token-cancel]")?.addEventListener("click", (event) => {
  event.target.closest("dialog").close("cancel");
});

document.querySelector("[data-forget-token] button")?.addEventListener("click", () => {
  forgetToken();
  announce("The saved API token was forgotten.");
});
showForgetButton();
