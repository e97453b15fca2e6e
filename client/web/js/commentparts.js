// How one comment reads on the board, as elements: its head (number, author, time), badges,
// body, the helpful button, the placeholder of a removed or deleted one, and the notes on one's
// own posts that others cannot see (awaiting review, not published, the support message).
// Pure builders: board.js decides when to build them and what they do when pressed.

import { h, paragraphs, setText } from "./dom.js";
import { answeredText, authorNodes, formatDateTime, timeElement } from "./format.js";
import { authorReason, rejectedText } from "./review.js";

/** The board's own address of a comment (a permalink). */
export function permalinkHref(slug, id) {
  const url = new URL("board.html", window.location.href);
  url.search = new URLSearchParams({ session: slug, comment: String(id) }).toString();
  return `${url.pathname}${url.search}`;
}

export function badge(testid, text, extra = null) {
  return h("span", { class: ["badge", `badge-${testid}`, extra], testid, text });
}

/** The `helpful` button with its count; `pressed` once this person marked it. */
export function helpfulButton(c, pressed, onclick) {
  const button = h(
    "button",
    { type: "button", class: "action helpful", testid: "helpful", onclick },
    h("span", { class: "helpful-label" }),
    " ",
    h("span", { class: "count" }),
  );
  updateHelpful(button, c, pressed);
  return button;
}

export function updateHelpful(button, c, pressed) {
  button.setAttribute("aria-pressed", pressed ? "true" : "false");
  button.title = pressed ? "You marked this helpful" : "Mark this comment helpful";
  setText(button.querySelector(".helpful-label"), pressed ? "Helpful ✓" : "Helpful");
  setText(button.querySelector(".count"), String(c.helpful_count || 0));
}

export function headPart(c) {
  return h(
    "div",
    { class: "c-head" },
    c.parent_id === null && c.number ? h("span", { class: "number", testid: "number", text: `${c.number}.` }) : null,
    h("span", { class: "author", testid: "author", id: `author-${c.id}` }, authorNodes(c.author)),
    h(
      "span",
      { class: "c-time" },
      timeElement(c.created_at),
      c.edited_at ? h("span", { class: "edited", testid: "edited", title: `Edited ${formatDateTime(c.edited_at)}`, text: " (edited)" }) : null,
    ),
  );
}

export function badgesPart(c) {
  return h(
    "div",
    { class: "badges", hidden: !(c.question || c.highlighted_at || c.answered_at) },
    c.question ? badge("question", "Question for the presenter") : null,
    c.highlighted_at ? badge("highlighted", "Highlighted by the presenter") : null,
    c.answered_at ? badge("answered", answeredText(c.answered_at)) : null,
  );
}

export function bodyPart(c) {
  return h("div", { class: "body", testid: "body" }, paragraphs(c.body));
}

export function placeholderText(c) {
  if (c.status === "deleted") return "Comment deleted by its author";
  return c.status === "held" ? "Hidden while a moderator reviews it" : "Removed by a moderator";
}

export function heldPart(c) {
  const why = authorReason(c.hold_reason);
  return h(
    "div",
    { class: "review-note held-note", testid: "held" },
    h("strong", { class: "review-label", text: "Awaiting review" }),
    h("span", { text: ` A moderator will review your ${c.parent_id === null ? "comment" : "reply"} before others see it. For now, only you can see it.` }),
    why ? h("span", { class: "review-why", text: ` ${why}` }) : null,
  );
}

/** "Not published: <reason>" on one's own rejected post, with `dismiss`. */
export function rejectedPart(c, reason, onDismiss) {
  return h(
    "div",
    { class: "review-note rejected-note" },
    h("p", { class: "rejected-text", testid: "rejected", dir: "auto", text: rejectedText(reason) }),
    h(
      "p",
      { class: "rejected-more" },
      "Only you can see this. ",
      h("button", { type: "button", class: "action", testid: "dismiss", "aria-describedby": `author-${c.id}`, text: "Dismiss", onclick: onDismiss }),
    ),
  );
}

/** The event's support message, with a post held as a crisis: warm, and first to be read. */
export function supportPart(id, text) {
  const title = `support-title-${id}`;
  return h(
    "div",
    { class: "support", testid: "support-message", role: "alert", "aria-labelledby": title },
    h("h3", { class: "support-title", id: title, text: "A message for you from the event team" }),
    h("div", { class: "support-text" }, paragraphs(text)),
  );
}
