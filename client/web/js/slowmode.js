// Slow mode (docs/protocol.md, "Reports, sanctions and slow mode"): a session can let each
// person post once per `slow_mode` seconds, set by a moderator or switched on by itself during a
// burst (`slow_mode_auto`). Presenters and moderators are exempt. The server is the authority:
// it refuses a post that comes too soon with 429 `slow_mode` and `retry_after`; the board only
// counts down what the server said (or what one's own last post implies), so nobody presses
// Post in vain.

import { store as local } from "./dom.js";
import { duration } from "./format.js";

/** Roles that slow mode does not slow. */
export const EXEMPT = new Set(["presenter", "moderator", "admin"]);

/** The interval in force, in seconds (0: off). */
export function slowSeconds(session) {
  return Math.max(0, Number(session?.slow_mode) || 0);
}

/** "Slow mode: one comment per 30 s (busy session)", or "" while it is off. */
export function slowModeText(session, label = "Slow mode") {
  const seconds = slowSeconds(session);
  if (!seconds) return "";
  return `${label}: one comment per ${duration(seconds)}${session.slow_mode_auto ? " (busy session)" : ""}`;
}

/** For the console: "Slow mode on: 30 s (automatic)" or "Slow mode off". */
export function slowModeState(session) {
  const seconds = slowSeconds(session);
  if (!seconds) return "Slow mode off";
  return `Slow mode on: ${duration(seconds)}${session.slow_mode_auto ? " (automatic)" : ""}`;
}

/**
 * One person's pace on one board: when they posted last (kept in localStorage, so a reload
 * keeps counting), the session's interval, and whether their role is exempt. `onTick(left)`
 * runs when the seconds left change (0: free to post again), once a second while counting.
 */
export class Pace {
  constructor({ onTick }) {
    this.onTick = onTick;
    this.seconds = 0;
    this.exempt = false;
    this.key = null;
    this.last = null; // client ms of the last post (or what a refusal implies)
    this.timer = null;
    this.shown = 0;
  }

  /** Whose pace this is (slug and sub): loads their last post time. */
  setOwner(slug, sub, role) {
    this.key = sub ? `backchannel.lastpost.${slug}.${sub}` : null;
    this.exempt = EXEMPT.has(role);
    const saved = this.key ? Number(local.get(this.key)) : NaN;
    this.last = Number.isFinite(saved) && saved > 0 ? saved : null;
    this.tick();
  }

  setSeconds(seconds) {
    this.seconds = Math.max(0, Number(seconds) || 0);
    this.tick();
  }

  /** One's own post was stored at `at` (client ms). */
  posted(at = Date.now()) {
    this.remember(at);
  }

  /** The server refused a post: `retryAfter` seconds left of an interval of `interval`. */
  refused(retryAfter, interval) {
    const seconds = Math.max(Number(interval) || this.seconds, Number(retryAfter) || 0);
    if (seconds > this.seconds) this.seconds = seconds;
    this.remember(Date.now() + (Number(retryAfter) || 0) * 1000 - this.seconds * 1000);
  }

  remember(at) {
    this.last = Math.max(at, this.last ?? 0);
    if (this.key) local.set(this.key, this.last);
    this.tick();
  }

  /** Whole seconds left before the next post may go (0: now). */
  get left() {
    if (this.exempt || !this.seconds || this.last === null) return 0;
    return Math.max(0, Math.ceil((this.last + this.seconds * 1000 - Date.now()) / 1000));
  }

  tick() {
    clearTimeout(this.timer);
    const left = this.left;
    if (left > 0) {
      const next = (this.last + this.seconds * 1000 - Date.now()) % 1000 || 1000;
      this.timer = setTimeout(() => this.tick(), next + 20);
    }
    if (left !== this.shown) {
      this.shown = left;
      this.onTick(left);
    }
  }
}

/** "You can post again in 12 s". */
export function waitText(left) {
  return `You can post again in ${duration(left)}`;
}
