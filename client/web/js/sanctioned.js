// A person's standing on the board (docs/protocol.md, "Reports, sanctions and slow mode"): a
// moderator's timeout or ban in the session's event stops them posting, editing and reporting;
// they keep reading, watching, marking helpful and deleting their own comments. The board learns
// of it from `auth.ok` (`sanction`, on every (re)connection), from the `author.sanctioned` and
// `author.reinstated` notices, and from a post the server refused with 403 `banned` or
// `timed_out` (the server is the authority). A timeout ends by itself at `until`: no message
// comes then, so a timer (on the client's clock, corrected to the server's) lifts it.

import { h, fill } from "./dom.js";
import { formatWhen } from "./format.js";

const MAX_DELAY = 2 ** 31 - 1;

/** The sanction from a refused request (403 banned / timed_out), or null for other errors. */
export function sanctionFromError(error) {
  if (!error || error.status !== 403) return null;
  if (error.code === "banned") return { kind: "ban", until: null, reason: "" };
  if (error.code === "timed_out") return { kind: "timeout", until: error.details?.until ?? null, reason: "" };
  return null;
}

/** What the author reads: "A moderator has paused your posting until 2:32 PM." */
export function sanctionText(sanction) {
  if (sanction.kind === "ban") return "A moderator has removed your ability to post in this event.";
  if (!sanction.until) return "A moderator has paused your posting for the rest of this event.";
  return `A moderator has paused your posting until ${formatWhen(sanction.until)}.`;
}

/**
 * standing = new Standing({skew: () => ms, onChange(sanction, {live})}): `current` is the
 * timeout or ban in force (null when none). `skew()` is server time minus client time.
 */
export class Standing {
  constructor({ skew = () => 0, onChange }) {
    this.skew = skew;
    this.onChange = onChange;
    this.sanction = null;
    this.timer = null;
  }

  get current() {
    return this.sanction;
  }

  /** Set what is in force (null: nothing); `live` says it happened just now (announce it). */
  set(sanction, { live = false } = {}) {
    const next = sanction && (sanction.kind === "ban" || sanction.kind === "timeout") && !this.over(sanction) ? sanction : null;
    clearTimeout(this.timer);
    this.timer = null;
    if (next && next.kind === "timeout" && next.until) {
      const delay = Math.min(Math.max(this.endsAt(next) - Date.now() + 50, 0), MAX_DELAY);
      this.timer = setTimeout(() => this.set(null, { live: true }), delay);
    }
    const before = this.sanction;
    this.sanction = next;
    if (JSON.stringify(before) !== JSON.stringify(next)) this.onChange(next, { live, before });
  }

  /** When a timeout ends, in client time. */
  endsAt(sanction) {
    return Date.parse(sanction.until) - this.skew();
  }

  over(sanction) {
    return sanction.kind === "timeout" && Boolean(sanction.until) && this.endsAt(sanction) <= Date.now();
  }
}

/** Fill the board's `sanctioned` box: what the moderator did, why, and what still works. */
export function renderSanctioned(box, sanction) {
  if (!sanction) {
    box.hidden = true;
    delete box.dataset.kind;
    box.replaceChildren();
    return;
  }
  box.dataset.kind = sanction.kind;
  const reason = String(sanction.reason || "").trim();
  fill(
    box,
    h("p", { class: "sanctioned-text", text: sanctionText(sanction) }),
    reason ? h("p", { class: "sanctioned-reason" }, "Reason: ", h("span", { dir: "auto", text: reason })) : null,
    h("p", {
      class: "sanctioned-more",
      text: "You can still read the comments, mark them helpful and delete your own.",
    }),
  );
  box.hidden = false;
}
