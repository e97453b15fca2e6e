// The presenter feed (presenter.html): every comment and reply in arrival order, newest at the
// bottom, in large type; it follows new comments while scrolled to the bottom. Filters: all,
// top-level only, questions only, most helpful. A presenter highlights comments (a toggle)
// and marks questions answered (POST /v1/comments/{id}/marks). Comments removed by a
// moderator or deleted by their author leave the feed; a reply to one says which. Slow mode
// shows quietly in the header (presenters are never slowed).

import { h, fill, reconcile, paragraphs, setText, show } from "./dom.js";
import { authorNodes, timeElement } from "./format.js";
import { isPublic } from "./state.js";
import { slowModeText } from "./slowmode.js";
import { badges, parentKey, replyContext, staffScreen } from "./staff.js";

const feed = document.getElementById("feed");
const scroller = document.getElementById("feed-scroller");
const empty = document.querySelector(".p-empty");
const jump = document.querySelector(".jump");
const slowMode = document.querySelector('[data-testid="slow-mode"]');
const nodes = new Map(); // id -> {article, comment, allowed}
let filter = "all";
let unseen = 0;
let canMark = false;

const screen = staffScreen({
  role: "presenter",
  what: "highlighting comments and marking questions answered",
  onChange: ({ loaded, added }) => render({ added: loaded ? [] : added }),
  onGate: (allowed) => {
    canMark = allowed;
    render({ added: [] });
  },
  onSession: (session) => {
    const text = slowModeText(session, "Slow mode for attendees");
    setText(slowMode, text);
    show(slowMode, Boolean(text));
  },
});
const { store, api } = screen;

function visible(list) {
  const shown = list.filter(isPublic);
  switch (filter) {
    case "top":
      return shown.filter((c) => c.parent_id === null);
    case "questions":
      return shown.filter((c) => c.question);
    case "helpful":
      return shown
        .filter((c) => c.helpful_count > 0)
        .sort((a, b) => b.helpful_count - a.helpful_count || b.id - a.id);
    default:
      return shown;
  }
}

function toggleButton(testid, pressed, label, pressedLabel, onclick) {
  return h("button", {
    type: "button",
    class: ["p-button", pressed ? "is-on" : null],
    testid,
    "aria-pressed": pressed ? "true" : "false",
    disabled: !canMark,
    title: canMark ? null : "Sign in as a presenter to use this",
    text: pressed ? pressedLabel : label,
    onclick,
  });
}

function fillNode(node, c) {
  const { article } = node;
  node.comment = c;
  node.parentKey = parentKey(store, c);
  node.allowed = canMark;
  article.dataset.status = c.status;
  article.toggleAttribute("data-highlighted", Boolean(c.highlighted_at));
  article.toggleAttribute("data-answered", Boolean(c.answered_at));
  if (c.highlighted_at) article.dataset.highlighted = "true";
  if (c.answered_at) article.dataset.answered = "true";
  article.classList.toggle("is-question", Boolean(c.question));
  const parent = c.parent_id !== null ? store.get(c.parent_id) : null;
  const focused = article.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
  fill(
    article,
    h(
      "div",
      { class: "p-head" },
      c.number ? h("span", { class: "number", testid: "number", text: `${c.number}.` }) : null,
      h("span", { class: "author", testid: "author" }, authorNodes(c.author, "")),
      timeElement(c.created_at, { timeOnlyText: true }),
      c.edited_at ? h("span", { class: "edited", testid: "edited", text: "(edited)" }) : null,
    ),
    replyContext(c, parent, { removed: "a comment", deleted: "a comment deleted by its author" }),
    badges(c, "Question"),
    h("div", { class: "body", testid: "body" }, paragraphs(c.body)),
    h(
      "div",
      { class: "p-actions" },
      toggleButton("highlight", Boolean(c.highlighted_at), "Highlight", "Highlighted ✓", () => setMark(c.id, "highlighted")),
      toggleButton("mark-answered", Boolean(c.answered_at), "Mark answered", "Answered ✓", () => setMark(c.id, "answered")),
      c.helpful_count > 0
        ? h("span", { class: "p-helpful", testid: "helpful-count", text: `${c.helpful_count} found this helpful` })
        : null,
    ),
  );
  if (focused) article.querySelector(`[data-testid="${focused}"]`)?.focus();
}


function nodeFor(c) {
  let node = nodes.get(c.id);
  if (!node) {
    node = { article: h("article", { class: "p-comment", testid: "comment", data: { id: c.id } }), comment: null };
    nodes.set(c.id, node);
  }
  if (node.comment !== c || node.parentKey !== parentKey(store, c) || node.allowed !== canMark) fillNode(node, c);
  return node;
}

function atBottom() {
  return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
}

function render({ added = [], follow = false } = {}) {
  const wasAtBottom = atBottom();
  const list = visible(store.inOrder());
  reconcile(
    feed,
    list.map((c) => nodeFor(c).article),
  );
  for (const [id, node] of nodes) if (!node.article.isConnected && !store.has(id)) nodes.delete(id);
  const messages = {
    all: "No comments yet.",
    top: "No top-level comments yet.",
    questions: "No questions yet. Attendees can tick “Ask the presenter”.",
    helpful: "No comment has been marked helpful yet.",
  };
  setText(empty, messages[filter]);
  show(empty, list.length === 0);
  if (filter === "helpful") return;
  const arrived = added.filter((c) => isPublic(c) && list.includes(c)).length;
  if (wasAtBottom || follow) {
    scroller.scrollTop = scroller.scrollHeight;
    unseen = 0;
  } else {
    unseen += arrived;
  }
  renderJump();
  if (arrived) screen.say(`${arrived === 1 ? "A new comment" : `${arrived} new comments`} arrived.`);
}

function renderJump() {
  show(jump, unseen > 0);
  if (unseen > 0) setText(jump, `↓ ${unseen} new ${unseen === 1 ? "comment" : "comments"}`);
}

async function setMark(id, mark) {
  const c = store.get(id);
  if (!c) return;
  const on = mark === "highlighted" ? !c.highlighted_at : !c.answered_at;
  screen.hideError();
  try {
    const result = await api.mark(id, mark, on);
    if (result && result.comment) {
      const current = store.get(id);
      store.upsert({ ...result.comment, reply_count: current ? current.reply_count : result.comment.reply_count });
      render();
    }
    screen.say(
      mark === "highlighted" ? (on ? "Highlighted for every attendee." : "Highlight removed.") : on ? "Marked answered." : "No longer marked answered.",
    );
  } catch (error) {
    screen.failed(error, mark === "highlighted" ? "Highlighting" : "Marking answered");
  }
}

for (const radio of document.querySelectorAll('input[name="filter"]')) {
  radio.addEventListener("change", () => {
    if (!radio.checked) return;
    filter = radio.value;
    unseen = 0;
    render({ follow: filter !== "helpful" });
    if (filter === "helpful") scroller.scrollTop = 0;
  });
}

scroller.addEventListener("scroll", () => {
  if (unseen && atBottom()) {
    unseen = 0;
    renderJump();
  }
});

jump.addEventListener("click", () => {
  scroller.scrollTop = scroller.scrollHeight;
  unseen = 0;
  renderJump();
  feed.lastElementChild?.querySelector("button")?.focus({ preventScroll: true });
});

screen.start();
