// Where tokens come from and how they stay fresh (docs/screens.md, "Tokens"):
// - standalone pages: `#token=…` in the fragment (moved to sessionStorage, removed from the
//   address bar), or what sessionStorage holds, or the demo sign-in (POST /v1/dev/token);
// - the embedded board (`embed=1`): the host page's embed.js hands tokens over postMessage,
//   accepted only from the parent window (and its origin).
// A token is refreshed ahead of its expiry (one minute ahead; half its life if shorter) and
// when the server says token_expired. Listeners hear of every new token (the feed re-sends
// `auth`).

import { ApiError } from "./api.js";
import { store, uuid } from "./dom.js";

export const ROLES = ["attendee", "presenter", "moderator", "admin"];
export const PROFESSIONS = [
  "Psychotherapy",
  "Counseling",
  "Social Work",
  "Medicine",
  "Nursing",
  "Psychology",
  "Coach",
  "Clergy",
  "Teacher",
  "Marriage/Family Therapy",
  "Exercise Physiology",
  "Health Education",
  "Other",
  "Another Field",
];

const TOKEN_KEY = "backchannel.token";
const IDENTITY_KEY = "backchannel.identity";
const BROWSER_KEY = "backchannel.browser";
const AHEAD_MS = 60_000;
const MAX_TIMER = 2 ** 31 - 1;

/** The payload of a JWT (base64url JSON), unverified: only to read exp, role, name. */
export function decodeJwt(token) {
  try {
    const part = String(token).split(".")[1];
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** Whether these claims hold `role` (or higher) for `event` (a slug; "*" claims cover all). */
export function roleAllows(claims, role, event) {
  if (!claims) return false;
  const have = ROLES.indexOf(claims.role);
  if (have < 0 || have < ROLES.indexOf(role)) return false;
  return !event || claims.event === "*" || claims.event === event;
}

const session = {
  get(key) {
    try {
      return sessionStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      sessionStorage.setItem(key, value);
    } catch {
      /* storage unavailable: the token lives in memory only */
    }
  },
  remove(key) {
    try {
      sessionStorage.removeItem(key);
    } catch {
      /* nothing stored */
    }
  },
};

/** `#token=…` taken out of the address (so it is neither kept in history nor shared). */
function takeFragmentToken() {
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const token = params.get("token");
  if (!token) return null;
  params.delete("token");
  const rest = params.toString();
  const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
  window.history.replaceState(window.history.state, "", url);
  return token;
}

function parentOrigin() {
  const ancestors = window.location.ancestorOrigins;
  if (ancestors && ancestors.length > 0 && ancestors[0] !== "null") return ancestors[0];
  try {
    if (document.referrer) return new URL(document.referrer).origin;
  } catch {
    /* no usable referrer */
  }
  return null;
}

export class Tokens {
  constructor({ embed = false } = {}) {
    this.embed = embed;
    this.token = null;
    this.claims = null;
    this.receivedAt = 0;
    this.listeners = new Set();
    this.timer = null;
    this.refreshing = null;
    this.lastAttempt = 0;
    this.failures = 0;
    this.waiters = [];
    this.parentOrigin = embed ? parentOrigin() : null;
    if (embed) window.addEventListener("message", (event) => this.onMessage(event));
  }

  get current() {
    return this.token;
  }

  /** Whether a fresh token can be had without the person doing anything. */
  get canRefresh() {
    return this.embed || readIdentity() !== null;
  }

  get expiresAt() {
    return this.claims && typeof this.claims.exp === "number" ? this.claims.exp * 1000 : null;
  }

  get expired() {
    return this.expiresAt !== null && this.expiresAt <= Date.now();
  }

  /** Find the first token; in an embed, ask the host page and wait for it a little. */
  async init({ wait = 5000 } = {}) {
    if (this.embed) {
      await this.fromParent("initial", wait);
      return this.token;
    }
    const given = takeFragmentToken();
    if (given) {
      session.set(TOKEN_KEY, given);
      session.remove(IDENTITY_KEY); // a demo identity belongs to an earlier token
    }
    const saved = session.get(TOKEN_KEY);
    if (saved) this.set(saved, { persist: false });
    if (this.token && this.expired && this.canRefresh) await this.refresh("expired");
    return this.token;
  }

  onChange(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  set(token, { persist = true } = {}) {
    const claims = decodeJwt(token);
    if (!claims) return false;
    const changed = token !== this.token;
    this.token = token;
    this.claims = claims;
    this.receivedAt = Date.now();
    if (persist && !this.embed) session.set(TOKEN_KEY, token);
    this.schedule();
    if (changed) for (const listener of this.listeners) listener(token, claims);
    return true;
  }

  clear() {
    clearTimeout(this.timer);
    this.token = null;
    this.claims = null;
    session.remove(TOKEN_KEY);
    session.remove(IDENTITY_KEY);
    for (const listener of this.listeners) listener(null, null);
  }

  schedule() {
    clearTimeout(this.timer);
    if (this.expiresAt === null || !this.canRefresh) return;
    const lifetime = Math.max(this.expiresAt - this.receivedAt, 0);
    const due = this.expiresAt - Math.min(AHEAD_MS, lifetime / 2);
    const pause = this.failures ? Math.min(5000 * this.failures, 30000) : 1000;
    const delay = Math.max(due - Date.now(), this.lastAttempt + pause - Date.now(), 0);
    this.timer = setTimeout(() => this.refresh("expiring"), Math.min(delay, MAX_TIMER));
  }

  /** A fresh token (deduplicated while one is on its way); null when none can be had. */
  refresh(reason = "expiring") {
    if (this.refreshing) return this.refreshing;
    this.lastAttempt = Date.now();
    const before = this.token;
    this.refreshing = (async () => {
      try {
        if (this.embed) {
          await this.fromParent(reason, 10000);
        } else {
          const identity = readIdentity();
          if (identity) this.set(await demoToken(identity));
        }
      } catch {
        /* counted below as a failure */
      } finally {
        this.refreshing = null;
      }
      const fresh = this.token && this.token !== before && !this.expired;
      this.failures = fresh ? 0 : this.failures + 1;
      if (!fresh) this.schedule();
      return fresh ? this.token : null;
    })();
    return this.refreshing;
  }

  // --- Embedded: the host page's embed.js is the source -----------------------------------------

  fromParent(reason, wait) {
    if (!this.embed || window.parent === window) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter = { resolve, timer: setTimeout(() => done(null), wait) };
      const done = (token) => {
        clearTimeout(waiter.timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(token);
      };
      waiter.resolve = done;
      this.waiters.push(waiter);
      this.postToParent({ type: "backchannel:token-request", reason, expires_at: this.claims?.exp ?? null });
    });
  }

  postToParent(message) {
    if (window.parent === window) return;
    window.parent.postMessage(message, this.parentOrigin || "*");
  }

  onMessage(event) {
    if (event.source !== window.parent || window.parent === window) return;
    if (this.parentOrigin && event.origin !== this.parentOrigin) return;
    const data = event.data;
    if (!data || typeof data !== "object" || data.type !== "backchannel:token") return;
    if (!this.parentOrigin) this.parentOrigin = event.origin; // first valid answer pins it
    if (typeof data.token === "string" && data.token) this.set(data.token);
    // A null token is an answer too: the host has none (an anonymous visitor).
    for (const waiter of [...this.waiters]) waiter.resolve(this.token);
  }
}

// --- Demo sign-in --------------------------------------------------------------------------------

function readIdentity() {
  const raw = session.get(IDENTITY_KEY);
  if (!raw) return null;
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}

function hash(text) {
  let h = 0x811c9dc5;
  for (const ch of text) {
    h ^= ch.codePointAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/** The same person (name, profession, place) in this browser keeps the same demo sub. */
function demoSub(identity) {
  let browser = store.get(BROWSER_KEY);
  if (typeof browser !== "string") {
    browser = uuid().slice(0, 8);
    store.set(BROWSER_KEY, browser);
  }
  const who = ["name", "profession", "city", "region", "country"]
    .map((k) => String(identity[k] || "").trim().toLowerCase())
    .join("|");
  return `demo-${browser}-${hash(who)}`;
}

/** POST /v1/dev/token: a token for this identity (404 on servers that are not demos). */
export async function demoToken(identity, base = "") {
  let response;
  try {
    response = await fetch(`${base}/v1/dev/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(identity),
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, "network", "the server cannot be reached right now");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || "");
  }
  if (!data || typeof data.token !== "string") throw new ApiError(500, "internal", "no token in the answer");
  return data.token;
}

/** Sign in on a demo server; keeps the identity (this tab) to refresh the token later. */
export async function demoSignIn(tokens, fields) {
  const identity = {
    name: String(fields.name || "").trim(),
    profession: String(fields.profession || "").trim(),
    city: String(fields.city || "").trim(),
    region: String(fields.region || "").trim(),
    country: String(fields.country || "").trim().toUpperCase().slice(0, 2),
    role: ROLES.includes(fields.role) ? fields.role : "attendee",
  };
  identity.sub = demoSub(identity);
  const token = await demoToken(identity);
  session.set(IDENTITY_KEY, JSON.stringify(identity));
  tokens.set(token);
  return token;
}

export function isDemoUnavailable() {
  return session.get("backchannel.no-demo") === "1";
}

export function markDemoUnavailable() {
  session.set("backchannel.no-demo", "1");
}
