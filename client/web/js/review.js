// Words for posts held for review (docs/protocol.md, "The state machine"; docs/moderation.md):
// what moderators read in the queue, what an author reads on their own held post, and the
// queue item the console works with.

/** Why a post waits, for moderators: a short label and what it means. */
const FOR_MODERATORS = {
  crisis: ["Crisis", "First-person crisis: its author was shown the event's support message."],
  link: ["Link", "It contains a web address."],
  contact: ["Contact details", "It contains an e-mail address or a phone number."],
  personal: ["Personal problem or referral", "It asks for a referral, or for help with a personal problem."],
  suspect: ["Suspect word", "It contains a word on this event's suspect list."],
  premoderation: ["Pre-moderated", "This session holds every post for review."],
  reported: ["Reported", "Published, and reported by attendees: Keep leaves it published, Remove removes it."],
  flagged: ["Flagged author", "Its author is flagged in this event: each of their posts waits for review."],
};

export const HOLD_REASONS = new Set(Object.keys(FOR_MODERATORS));

export function reasonLabel(reason) {
  return FOR_MODERATORS[reason]?.[0] || "Held by the rules";
}

export function reasonHelp(reason) {
  return FOR_MODERATORS[reason]?.[1] || "The community rules held it for review.";
}

/**
 * Why an author's own post waits, in their words. Nothing for a crisis: that post gets the
 * event's support message instead, and no label.
 */
const FOR_AUTHORS = {
  link: "It contains a link: links are checked before they appear.",
  contact: "It contains contact details, which are checked before they appear.",
  personal: "It may ask for a referral or for personal advice, which this board cannot give.",
  suspect: "It contains a word this event checks before posts appear.",
  premoderation: "Every comment in this session is read by a moderator before it appears.",
  reported: "Other attendees asked a moderator to look at it.",
};

export function authorReason(reason) {
  return FOR_AUTHORS[reason] || "";
}

/**
 * A queue entry as the console uses it, from the server's QueueItem (`GET …/queue`, and the
 * `item` of `queue` messages): {session, comment, reason, match, reports, report_reasons}, with
 * defaults for what is missing; null for anything else.
 */
export function queueItem(raw) {
  if (!raw || typeof raw !== "object" || !raw.comment || typeof raw.comment.id !== "number") return null;
  return {
    session: raw.session || raw.comment.session || null,
    comment: raw.comment,
    reason: raw.reason || raw.comment.hold_reason || "rules",
    match: raw.match || null,
    reports: Number(raw.reports) || 0,
    report_reasons: Array.isArray(raw.report_reasons) ? raw.report_reasons : [],
  };
}

/** What a sanction that refused a held post leaves in its `hold_reason`, in the author's words. */
const REFUSED = {
  banned: "a moderator has stopped your posts in this event.",
  "timed out": "a moderator has paused your posts for a while.",
};

/**
 * The reason on one's own rejected post as `GET …/mine` gives it in `hold_reason`: the
 * moderator's reason, or the reason it was held when they gave none (then there is nothing to
 * quote), or what a sanction left there.
 */
export function rejectionReason(comment) {
  const reason = comment?.hold_reason;
  if (typeof reason !== "string" || HOLD_REASONS.has(reason) || reason === "rules") return "";
  return REFUSED[reason] || reason;
}

/** "Not published: <reason>" (a rejection without a reason still says what happened). */
export function rejectedText(reason) {
  const text = String(reason ?? "").trim();
  return text ? `Not published: ${text}` : "Not published: a moderator decided not to publish it.";
}

/**
 * sessionStorage that never throws: the support message shown with a post held as a crisis
 * stays with this tab (a reload shows it again) and goes when the tab closes, so a shared
 * computer keeps no trace of it.
 */
export const tabStore = {
  get(key) {
    try {
      const raw = sessionStorage.getItem(key);
      return raw === null ? null : JSON.parse(raw);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      sessionStorage.setItem(key, JSON.stringify(value));
    } catch {
      /* storage unavailable: the message shows until the page goes */
    }
  },
};
