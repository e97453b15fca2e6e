// Backchannel's embed script, for the host site's page (docs/screens.md, "Embedding"):
//
//   import { mount } from "https://backchannel.example/embed.js";
//   mount(document.getElementById("comments"), {server, session, token, getToken});
//
// It creates an iframe of the board (board.html?session=…&embed=1), sizes it to its content
// (`backchannel:height` messages) and answers the board's `backchannel:token-request` with
// `backchannel:token` (calling getToken() when the token it holds is near expiry). Tokens go
// only by postMessage, to the Backchannel origin, never in a URL; messages are accepted only
// from that origin and that iframe.

const AHEAD_SECONDS = 60;

function expiry(token) {
  try {
    const part = String(token).split(".")[1];
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const claims = JSON.parse(atob(padded));
    return typeof claims.exp === "number" ? claims.exp : null;
  } catch {
    return null;
  }
}

/**
 * Mount the board in `element`. Options: server (Backchannel's base URL), session (slug),
 * token (a JWT for this visitor, optional), getToken (async () => a fresh JWT, optional),
 * title (the iframe's accessible name). Returns {iframe, setToken(token), unmount()}.
 */
export function mount(element, { server, session, token = null, getToken = null, title = "Comments" } = {}) {
  if (!element) throw new Error("backchannel: mount() needs an element");
  if (!session) throw new Error("backchannel: mount() needs the session's slug");
  const base = new URL(server || import.meta.url, window.location.href);
  const origin = base.origin;
  const src = new URL("board.html", new URL(base.pathname.replace(/[^/]*$/, ""), origin));
  src.search = new URLSearchParams({ session, embed: "1" }).toString();

  let held = token || null;
  let fetching = null;

  const iframe = document.createElement("iframe");
  iframe.src = src.href;
  iframe.title = title;
  iframe.loading = "eager";
  iframe.setAttribute("allow", "clipboard-write");
  iframe.style.display = "block";
  iframe.style.width = "100%";
  iframe.style.minHeight = "320px";
  iframe.style.height = "480px";
  iframe.style.border = "0";
  iframe.style.colorScheme = "normal";

  function send(value) {
    if (!iframe.contentWindow) return;
    iframe.contentWindow.postMessage({ type: "backchannel:token", token: value }, origin);
  }

  function nearExpiry(value) {
    const exp = expiry(value);
    if (exp === null) return false;
    const now = Date.now() / 1000;
    return exp - now < AHEAD_SECONDS;
  }

  async function fresh() {
    if (typeof getToken !== "function") return held;
    if (!fetching) {
      fetching = (async () => {
        try {
          const value = String((await getToken()) || "").trim();
          if (value) held = value;
        } catch (error) {
          console.warn("backchannel: getToken() failed:", error);
        } finally {
          fetching = null;
        }
        return held;
      })();
    }
    return fetching;
  }

  async function onMessage(event) {
    if (event.origin !== origin || event.source !== iframe.contentWindow) return;
    const data = event.data;
    if (!data || typeof data !== "object") return;
    if (data.type === "backchannel:height") {
      const height = Number(data.height);
      if (Number.isFinite(height) && height > 0) {
        iframe.style.minHeight = "0";
        iframe.style.height = `${Math.ceil(height)}px`;
      }
    } else if (data.type === "backchannel:token-request") {
      const stale = !held || nearExpiry(held) || data.reason === "expired";
      const value = stale ? await fresh() : held;
      send(value || null);
    }
  }

  window.addEventListener("message", onMessage);
  iframe.addEventListener("load", () => {
    if (held) send(held);
  });
  element.replaceChildren(iframe);

  return {
    iframe,
    setToken(value) {
      held = value;
      send(value);
    },
    unmount() {
      window.removeEventListener("message", onMessage);
      iframe.remove();
    },
  };
}
