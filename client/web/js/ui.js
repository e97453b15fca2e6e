// Pieces the three screens share: the page's parameters, the connection status, the watcher
// count, the demo sign-in form and the "signed in as" line.

import { ApiError, describeError } from "./api.js";
import { h, fill, setText, show } from "./dom.js";
import { count } from "./format.js";
import { PROFESSIONS, ROLES, demoSignIn, isDemoUnavailable, markDemoUnavailable } from "./token.js";

export function pageParams() {
  const params = new URLSearchParams(window.location.search);
  const int = (name) => {
    const value = params.get(name);
    return value && /^\d{1,19}$/.test(value) ? value : null;
  };
  return {
    session: (params.get("session") || "").trim(),
    comment: int("comment"),
    before: int("before"),
    after: int("after"),
    embed: params.get("embed") === "1",
  };
}

const STATUS_TEXT = {
  idle: "Connecting…",
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  stopped: "Not connected",
};

/** The `status` element: data-state and words for it. */
export function showStatus(el, state, detail) {
  el.dataset.state = state;
  setText(el, state === "stopped" && detail ? `Not connected: ${detail}` : STATUS_TEXT[state] || state);
}

export function showWatching(el, n) {
  setText(el, `${Number(n).toLocaleString()} watching`);
  show(el, true);
}

export function showTotal(el, n) {
  setText(el, count(n, "Comment"));
}

/** A page that cannot work says so plainly (no session in the address, unknown session). */
export function fatal(message) {
  const main = document.querySelector("main") || document.body;
  const box = h("div", { class: "fatal", role: "alert" }, h("h2", { text: "This page cannot open" }), h("p", { text: message }));
  main.prepend(box);
}

let formCount = 0;

/**
 * The demo sign-in form (data-testid="sign-in"): name, profession, city, region, country and a
 * role. On a server that is not a demo (POST /v1/dev/token answers 404) it turns into a note
 * that a token from the event's site is needed.
 */
export function signInForm({ tokens, role = "attendee", heading = "Sign in (demo)", intro, onSignedIn }) {
  const n = (formCount += 1);
  const id = (name) => `signin-${n}-${name}`;
  if (isDemoUnavailable()) return tokenNeeded();
  const field = (name, label, control, hint) =>
    h(
      "div",
      { class: "field" },
      h("label", { for: id(name), text: label }),
      control,
      hint ? h("span", { class: "hint", id: id(`${name}-hint`), text: hint }) : null,
    );
  const input = (name, attrs = {}) => h("input", { id: id(name), name, type: "text", ...attrs });
  const select = (name, options, selected) =>
    h(
      "select",
      { id: id(name), name },
      options.map(([value, label]) => h("option", { value, selected: value === selected, text: label })),
    );
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const button = h("button", { type: "submit", class: "button primary", text: "Sign in (demo)" });
  const form = h(
    "form",
    { testid: "sign-in", class: "sign-in", "aria-labelledby": id("title"), novalidate: true },
    h("h2", { id: id("title"), class: "sign-in-title", text: heading }),
    h("p", { class: "hint", text: intro || "This demo server signs anyone in: choose how your comments are signed." }),
    h(
      "div",
      { class: "fields" },
      field("name", "Name", input("name", { autocomplete: "name", required: true, maxlength: 100 })),
      field(
        "profession",
        "Profession",
        select("profession", [["", "Choose…"], ...PROFESSIONS.map((p) => [p, p])], ""),
      ),
      field("city", "City", input("city", { autocomplete: "address-level2", maxlength: 100 })),
      field("region", "State or region", input("region", { autocomplete: "address-level1", maxlength: 100 })),
      field(
        "country",
        "Country",
        input("country", { autocomplete: "country", maxlength: 2, size: 3, "aria-describedby": id("country-hint") }),
        "Two letters, e.g. US",
      ),
      field(
        "role",
        "Role",
        select(
          "role",
          ROLES.filter((r) => r !== "admin").map((r) => [r, r[0].toUpperCase() + r.slice(1)]),
          role,
        ),
      ),
    ),
    h("div", { class: "form-row" }, button),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    show(error, false);
    if (!String(data.name || "").trim()) {
      fill(error, "Please enter a name: it is shown with your comments.");
      show(error, true);
      form.elements.name.focus();
      return;
    }
    if (data.country && !/^[A-Za-z]{2}$/.test(String(data.country).trim())) {
      fill(error, "Country: use the two-letter code, e.g. US, GB, NG.");
      show(error, true);
      form.elements.country.focus();
      return;
    }
    button.disabled = true;
    button.textContent = "Signing in…";
    try {
      await demoSignIn(tokens, data);
      onSignedIn?.();
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 404) {
        markDemoUnavailable();
        form.replaceWith(tokenNeeded());
        return;
      }
      fill(error, `Could not sign in: ${describeError(failure, "Signing in")}`);
      show(error, true);
    } finally {
      button.disabled = false;
      button.textContent = "Sign in (demo)";
    }
  });
  return form;
}

/** What a page says where sign-in is not offered. */
export function tokenNeeded(text) {
  return h(
    "p",
    { class: "token-needed", testid: "token-needed" },
    text ||
      "To take part, open this page from the event's site: it signs you in. (This server does not offer demo sign-ins.)",
  );
}

/** "Signed in as Maya (attendee) · Sign out". */
export function whoami(tokens, { onSignOut, signOut = true } = {}) {
  const claims = tokens.claims || {};
  const name = String(claims.name || "").trim() || "someone";
  return h(
    "p",
    { class: "whoami", testid: "whoami" },
    "Signed in as ",
    h("bdi", { dir: "auto", class: "name", text: name }),
    claims.role ? ` (${claims.role})` : "",
    signOut
      ? [
          " · ",
          h("button", {
            type: "button",
            class: "link",
            text: "Sign out",
            onclick: () => {
              tokens.clear();
              onSignOut?.();
            },
          }),
        ]
      : null,
  );
}
