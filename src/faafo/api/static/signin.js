// Private reads: the page a browser gets (401) without a reading session. It
// trades the client token for an HttpOnly session cookie (POST /v1/session)
// and loads the page it was refused again. A token saved earlier is used at
// once, so an expired session renews itself without asking.

import { askForToken, paths, saveToken, savedToken } from "./api.js";

const RELOADED_KEY = "faafo.signin-reload";
const status = document.querySelector("[data-signin-status]");
const button = document.querySelector("[data-signin]");

function say(text, kind = "") {
  status.textContent = text;
  status.className = `form-status ${kind}`;
}

/** "ok", "refused" or "unreachable". */
async function startSession(token) {
  let response;
  try {
    response = await fetch(paths.session, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
      cache: "no-store",
      credentials: "same-origin",
    });
  } catch {
    return "unreachable";
  }
  if (response.ok) return "ok";
  if (response.status === 401 || response.status === 403) return "refused";
  return "unreachable";
}

function reloadOnce() {
  // A browser that refuses cookies would come straight back here: reload only once in a while.
  let last = 0;
  try {
    last = Number(sessionStorage.getItem(RELOADED_KEY) || 0);
    sessionStorage.setItem(RELOADED_KEY, String(Date.now()));
  } catch {
    /* no session storage: reload anyway, the person clicked */
  }
  if (Date.now() - last < 10_000) {
    say("This browser did not keep the session cookie: allow cookies for this site, then try again.", "error");
    return;
  }
  say("Opening the gallery…", "ok");
  window.location.reload();
}

async function signIn(reason) {
  for (;;) {
    const token = await askForToken(reason);
    if (!token) {
      say("Nothing is shown here without the token.");
      button.focus();
      return;
    }
    const outcome = await startSession(token);
    if (outcome === "ok") {
      saveToken(token);
      reloadOnce();
      return;
    }
    if (outcome === "unreachable") {
      say("The server cannot be reached; check that faafo is running.", "error");
      return;
    }
    reason = "That token was refused: enter the client token of this API.";
  }
}

button.addEventListener("click", () => signIn("This gallery is private: enter the API's client token."));

const saved = savedToken();
const outcome = saved ? await startSession(saved) : "none";
if (outcome === "ok") {
  reloadOnce();
} else if (outcome === "unreachable") {
  say("The server cannot be reached; check that faafo is running.", "error");
} else {
  signIn(
    outcome === "refused"
      ? "The saved token was refused: enter the client token of this API."
      : "This gallery is private: enter the API's client token to see it.",
  );
}
