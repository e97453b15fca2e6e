// The moderator console (moderator.html): every comment and reply as it arrives, newest first,
// with author and time; one click or key removes or restores. Shows who removed what and when:
// the remove/restore answers say removed_by/removed_at, and a `changed: false` answer means
// another moderator got there first (shown as removed by them, not as an error). Opens and
// closes the session. Keys: j/k move, x or Delete remove, u restore. A comment its author
// deleted shows as "Deleted by its author", with nothing to restore.
//
// The optional reason in the header goes with every action taken while it is filled in (the
// server keeps it in the event's audit log). The audit log panel lists those actions, newest
// first; it reloads after each action here and every 10 s while open. The CSV exports need the
// token, so they are fetched and offered as a download (an object URL), not linked.
//
// Above the stream, the review queue (queue.js) lists the event's posts waiting for review, and
// the rules editor (rules.js) its own word lists and support message. Keys in the queue: j/k or
// arrows move, a approves, r rejects, x selects, A/R act on the selection.
//
// Each comment (and queue row) has an author menu (sanctions.js, authormenu.js): flag, pause or
// ban its author in the event, optionally removing all their comments; the sanctions panel lists
// what is in force, each with Lift. Slow mode is set in the header (slowcontrols.js).

import { ApiError, saveBlob } from "./api.js";
import { h, fill, keepPosition, paragraphs, reconcile, setText, show } from "./dom.js";
import { authorNodes, formatDateTime, formatTime, moderatorName, removedText, timeElement } from "./format.js";
import { acceptance, isPublic } from "./state.js";
import { reviewQueue } from "./queue.js";
import { rulesEditor } from "./rules.js";
import { sanctionsConsole } from "./sanctions.js";
import { slowModeControls } from "./slowcontrols.js";
import { badges, parentKey, replyContext, staffScreen } from "./staff.js";

const stream = document.getElementById("stream");
const empty = document.querySelector(".m-empty");
const olderButton = document.getElementById("load-older");
const stateEl = document.querySelector('[data-testid="session-state"]');
const windowEl = document.querySelector(".m-window");
const openButton = document.querySelector('[data-testid="open-session"]');
const closeButton = document.querySelector('[data-testid="close-session"]');
const reasonInput = document.querySelector('[data-testid="reason"]');
const auditButton = document.querySelector('[data-testid="show-audit"]');
const exportButton = document.querySelector('[data-testid="export-csv"]');
const auditCsvButton = document.querySelector('[data-testid="audit-csv"]');
const auditPanel = document.querySelector('[data-testid="audit"]');
const auditRows = document.getElementById("audit-rows");
const auditStatus = auditPanel.querySelector(".audit-status");
const auditEmpty = auditPanel.querySelector(".audit-empty");
const AUDIT_EVERY_MS = 10000;

const nodes = new Map(); // id -> {article, comment, info, allowed}
const removedInfo = new Map(); // id -> {by, at} (by null: a moderator, name unknown)
const busy = new Set();
let canModerate = false;
let current = null; // the id holding the roving tabindex

const screen = staffScreen({
  role: "moderator",
  what: "moderating",
  onChange: ({ events }) => {
    for (const change of events) {
      const c = change.comment;
      if (!c) continue;
      if (c.status === "published") removedInfo.delete(c.id);
      else if (!removedInfo.has(c.id)) removedInfo.set(c.id, { by: null, at: change.event.at });
    }
    render();
  },
  onSession: () => {
    sanctions.setAllowed(canModerate && Boolean(screen.session));
    slow.setAllowed(canModerate && Boolean(screen.session));
    slow.render();
    renderSession();
    queue.setAllowed(canModerate && Boolean(screen.session));
    rules.setAllowed(canModerate && Boolean(screen.session));
  },
  onGate: (allowed) => {
    canModerate = allowed;
    sanctions.setAllowed(canModerate && Boolean(screen.session));
    slow.setAllowed(canModerate && Boolean(screen.session));
    renderSession();
    renderTools();
    render();
    queue.setAllowed(canModerate && Boolean(screen.session));
    rules.setAllowed(canModerate && Boolean(screen.session));
  },
  onAuth: () => queue.load(), // queue messages are not replayed: read the queue again
  onQueue: (message) => queue.onMessage(message),
});
const { store, api } = screen;
const sanctions = sanctionsConsole({ screen, reason: () => reason(), onChanged: () => refreshAudit() });
const slow = slowModeControls({ screen, reason: () => reason(), onChanged: () => refreshAudit() });
const queue = reviewQueue({
  screen,
  reason: () => reason(),
  authorTools: (c, describedBy) => sanctions.menuFor(`queue-${c.id}`, c, describedBy),
});
const rules = rulesEditor({ screen });

// --- The session's state -------------------------------------------------------------------------

function renderSession() {
  const session = screen.session;
  if (!session) return;
  const open = session.state === "open";
  setText(stateEl, open ? "Open" : "Closed");
  stateEl.dataset.state = session.state;
  const { accepting } = acceptance(session);
  const edges = [];
  if (session.opens_at) edges.push(`opens ${formatDateTime(session.opens_at)}`);
  if (session.closes_at) edges.push(`closes ${formatDateTime(session.closes_at)}`);
  setText(
    windowEl,
    edges.length ? `Posting window: ${edges.join(", ")}${open && !accepting ? " (not taking posts now)" : ""}` : "",
  );
  show(windowEl, edges.length > 0);
  openButton.disabled = !canModerate || open;
  closeButton.disabled = !canModerate || !open;
}

async function setState(open) {
  screen.hideError();
  const button = open ? openButton : closeButton;
  button.disabled = true;
  const why = reason();
  try {
    const result = open ? await api.open(screen.slug, why) : await api.close(screen.slug, why);
    if (result && result.session) screen.setSession(result.session);
    screen.say(open ? "The session is open for comments." : "The session is closed to comments.");
  } catch (error) {
    screen.failed(error, open ? "Opening the session" : "Closing the session");
  } finally {
    renderSession();
    refreshAudit();
  }
}

openButton.addEventListener("click", () => setState(true));
closeButton.addEventListener("click", () => setState(false));

// --- The stream ----------------------------------------------------------------------------------

function fillNode(node, c) {
  const { article } = node;
  const info = removedInfo.get(c.id) || null;
  node.comment = c;
  node.parentKey = parentKey(store, c);
  node.info = info;
  node.allowed = canModerate;
  article.dataset.status = c.status;
  const focused = article.contains(document.activeElement) && document.activeElement !== article ? document.activeElement.dataset.testid : null;
  const parent = c.parent_id !== null ? store.get(c.parent_id) : null;
  const removed = !isPublic(c);
  const deleted = c.status === "deleted"; // by its author: nothing to restore
  const reviewing = c.status === "held" || c.status === "rejected"; // an edit sent it back to review
  const labelId = `m-author-${c.id}`;
  article.setAttribute("aria-labelledby", labelId);
  fill(
    article,
    h(
      "div",
      { class: "m-head" },
      c.number ? h("span", { class: "number", testid: "number", text: `${c.number}.` }) : null,
      c.author
        ? h("span", { class: "author", testid: "author", id: labelId }, authorNodes(c.author, ""))
        : h("span", { class: "author hidden-author", id: labelId, text: c.number ? `Comment ${c.number}` : "A reply" }),
      timeElement(c.created_at),
      c.edited_at ? h("span", { class: "edited", testid: "edited", title: `Edited ${formatDateTime(c.edited_at)}`, text: "(edited)" }) : null,
    ),
    replyContext(c, parent, { removed: "a removed comment", deleted: "a comment deleted by its author" }),
    badges(c, "Question for the presenter"),
    removed
      ? h("p", { class: "redacted", text: redactedText(c) })
      : h("div", { class: "body", testid: "body" }, paragraphs(c.body)),
    reviewing
      ? null
      : deleted
      ? h("p", {
          class: "removed-by deleted-by",
          testid: "deleted-by",
          text: `Deleted by its author${info && info.at ? ` at ${formatTime(info.at)}` : ""}`,
        })
      : removed
        ? h("p", {
            class: "removed-by",
            testid: "removed-by",
            title: info && info.by ? info.by : null,
            text: removedText(info ? info.by : null, info ? info.at : null),
          })
        : null,
    h(
      "div",
      { class: "m-actions" },
      deleted || reviewing
        ? null
        : removed
        ? h("button", {
            type: "button",
            class: "button",
            testid: "restore",
            disabled: !canModerate,
            text: "Restore",
            onclick: () => moderate(c.id, "restore"),
          })
        : h("button", {
            type: "button",
            class: "button danger",
            testid: "remove",
            disabled: !canModerate,
            text: "Remove",
            onclick: () => moderate(c.id, "remove"),
          }),
      removed || reviewing ? null : sanctions.menuFor(`stream-${c.id}`, c, labelId),
      c.reply_count > 0 ? h("span", { class: "m-replies", text: `${c.reply_count} ${c.reply_count === 1 ? "reply" : "replies"}` }) : null,
      h("a", {
        class: "m-link",
        href: `board.html?${new URLSearchParams({ session: screen.slug, comment: String(c.id) })}`,
        target: "_blank",
        rel: "noopener",
        text: "View on the board",
      }),
    ),
  );
  if (focused) {
    const swap = { remove: "restore", restore: "remove" };
    const target = article.querySelector(`[data-testid="${focused}"]`) || article.querySelector(`[data-testid="${swap[focused]}"]`);
    (target || article).focus();
  }
}

function redactedText(c) {
  if (c.status === "deleted") return "Its author deleted it: its text is gone.";
  if (c.status === "held") return "Its author edited it into something the rules hold: it is back in the review queue.";
  if (c.status === "rejected") return "Rejected after review.";
  return "Its text is hidden while it is removed.";
}

function nodeFor(c) {
  let node = nodes.get(c.id);
  if (!node) {
    node = {
      article: h("article", { class: "m-comment", testid: "comment", data: { id: c.id }, tabindex: "-1" }),
      comment: null,
    };
    node.article.addEventListener("focus", () => setCurrent(c.id));
    node.article.addEventListener("focusin", () => setCurrent(c.id));
    nodes.set(c.id, node);
  }
  const info = removedInfo.get(c.id) || null;
  if (node.comment !== c || node.parentKey !== parentKey(store, c) || node.info !== info || node.allowed !== canModerate) fillNode(node, c);
  return node;
}

function ordered() {
  return store.inOrder().reverse();
}

function render() {
  const list = ordered();
  keepPosition(".m-comment", () => {
    reconcile(
      stream,
      list.map((c) => nodeFor(c).article),
    );
  });
  show(empty, list.length === 0);
  olderButton.hidden = !screen.older;
  if (current === null || !nodes.has(current)) setCurrent(list.length ? list[0].id : null);
}

function setCurrent(id) {
  if (current === id) return;
  const previous = current !== null ? nodes.get(current) : null;
  if (previous) previous.article.tabIndex = -1;
  current = id;
  const node = id !== null ? nodes.get(id) : null;
  if (node) node.article.tabIndex = 0;
}

// --- Remove and restore --------------------------------------------------------------------------

async function moderate(id, action) {
  if (!canModerate || busy.has(id)) return;
  screen.hideError();
  busy.add(id);
  nodes.get(id)?.article.setAttribute("aria-busy", "true");
  const why = reason();
  try {
    const result = action === "remove" ? await api.remove(id, why) : await api.restore(id, why);
    store.upsert(result.comment);
    if (result.comment.status === "published") removedInfo.delete(id);
    else removedInfo.set(id, { by: result.removed_by, at: result.removed_at });
    const who = moderatorName(result.removed_by);
    if (action === "remove") {
      screen.say(result.changed ? "Removed." : `Already removed by ${who}.`);
    } else {
      screen.say(result.changed ? "Restored." : "It was already published.");
    }
  } catch (error) {
    if (!(await deletedMeanwhile(id, error))) screen.failed(error, action === "remove" ? "Removing" : "Restoring");
  } finally {
    busy.delete(id);
    nodes.get(id)?.article.removeAttribute("aria-busy");
    render();
    refreshAudit();
  }
}

/**
 * A comment its author deleted a moment ago (this console had not heard yet) cannot be
 * removed: the server answers 409 not_allowed. Show it as deleted, not as an error.
 */
async function deletedMeanwhile(id, error) {
  if (!(error instanceof ApiError) || error.code !== "not_allowed") return false;
  try {
    const { comment } = await api.locate(id);
    if (comment.status !== "deleted") return false;
    store.upsert({ ...comment, reply_count: store.get(id)?.reply_count ?? comment.reply_count });
    screen.say("Its author has deleted that comment.");
    return true;
  } catch {
    return false;
  }
}

/** The reason typed in the header, for the next actions ("" when none). */
function reason() {
  return reasonInput.value.trim();
}

// --- Keyboard ------------------------------------------------------------------------------------

function focusedId() {
  const article = document.activeElement?.closest?.('[data-testid="comment"]');
  if (article && stream.contains(article)) return Number(article.dataset.id);
  return null;
}

function move(step) {
  const articles = [...stream.querySelectorAll('[data-testid="comment"]')];
  if (!articles.length) return;
  const id = focusedId() ?? current;
  const index = articles.findIndex((a) => Number(a.dataset.id) === id);
  const next = articles[Math.min(Math.max(index === -1 ? 0 : index + step, 0), articles.length - 1)];
  setCurrent(Number(next.dataset.id));
  next.focus({ preventScroll: true });
  next.scrollIntoView({ block: "nearest" });
}

/** Keys are for lists, not for typing: text fields keep theirs (a checkbox does not type). */
const TYPING = 'textarea, select, [contenteditable], input:not([type="checkbox"]):not([type="radio"])';

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.target.closest && event.target.closest(TYPING)) return;
  if (event.target.closest?.(".am-panel")) return; // an open author menu has keys of its own
  if (queue.handleKey(event)) {
    event.preventDefault();
    return;
  }
  const id = focusedId();
  switch (event.key) {
    case "j":
      event.preventDefault();
      if (id === null && queue.enter()) break;
      move(1);
      break;
    case "k":
      event.preventDefault();
      if (id === null && queue.enter()) break;
      move(-1);
      break;
    case "x":
    case "Delete":
      if (id === null) return;
      event.preventDefault();
      if (isPublic(store.get(id))) moderate(id, "remove");
      break;
    case "u":
      if (id === null) return;
      event.preventDefault();
      if (store.get(id)?.status === "removed") moderate(id, "restore");
      break;
    default:
      break;
  }
});

// --- Reason, audit log and exports ---------------------------------------------------------------

function renderTools() {
  reasonInput.disabled = !canModerate;
  auditButton.disabled = !canModerate;
  exportButton.disabled = !canModerate || busyDownloads.has(exportButton);
  auditCsvButton.disabled = !canModerate || busyDownloads.has(auditCsvButton);
  if (!canModerate && !auditPanel.hidden) toggleAudit(false);
}

const ACTIONS = {
  remove: "removed",
  restore: "restored",
  open: "opened comments",
  close: "closed comments",
};

let auditTimer = null;
let auditLoading = false;
let auditAgain = false;

function toggleAudit(open = auditPanel.hidden) {
  auditPanel.hidden = !open;
  auditButton.setAttribute("aria-expanded", open ? "true" : "false");
  setText(auditButton, open ? "Hide audit log" : "Audit log");
  clearInterval(auditTimer);
  auditTimer = null;
  if (open) {
    auditTimer = setInterval(refreshAudit, AUDIT_EVERY_MS);
    refreshAudit();
  }
}

/** Load the audit log again (while the panel is open); one request at a time. */
async function refreshAudit() {
  if (auditPanel.hidden || !canModerate || !screen.session) return;
  if (auditLoading) {
    auditAgain = true;
    return;
  }
  auditLoading = true;
  auditPanel.setAttribute("aria-busy", "true");
  try {
    const log = await api.audit(screen.session.event);
    renderAudit(log.entries || []);
    setText(auditStatus, `Updated ${formatTime(new Date())}`);
  } catch (error) {
    setText(auditStatus, `Could not load the audit log: ${describeAuditError(error)}`);
  } finally {
    auditLoading = false;
    auditPanel.removeAttribute("aria-busy");
    if (auditAgain) {
      auditAgain = false;
      refreshAudit();
    }
  }
}

function describeAuditError(error) {
  return error instanceof ApiError ? error.message || error.code : String(error?.message || error);
}

function renderAudit(entries) {
  const rows = [...entries].reverse().map((entry) => {
    const action = `${ACTIONS[entry.action] || entry.action}${entry.changed ? "" : " (already so)"}`;
    let target = "—";
    if (entry.comment_id !== null && entry.comment_id !== undefined) {
      target = entry.session
        ? h("a", {
            href: `board.html?${new URLSearchParams({ session: entry.session, comment: String(entry.comment_id) })}`,
            target: "_blank",
            rel: "noopener",
            text: `#${entry.comment_id}`,
          })
        : `#${entry.comment_id}`;
    }
    const elsewhere = entry.session && entry.session !== screen.slug ? ` (${entry.session})` : "";
    return h(
      "tr",
      {
        testid: "audit-entry",
        data: { action: entry.action, commentId: entry.comment_id ?? null, changed: entry.changed ? "true" : "false" },
      },
      h("td", { class: "audit-time" }, timeElement(entry.at)),
      h("td", { class: "audit-actor" }, h("bdi", { dir: "auto", title: entry.actor, text: entry.actor_name || entry.actor })),
      h("td", { class: "audit-action", text: action }),
      h("td", { class: "audit-comment" }, target, elsewhere),
      h("td", { class: "audit-reason", dir: "auto", text: entry.reason || "" }),
    );
  });
  auditRows.replaceChildren(...rows);
  show(auditEmpty, rows.length === 0);
}

const busyDownloads = new Set();

/** Fetch a CSV with the token and offer it as a download. */
async function download(button, path, fallbackName) {
  if (!canModerate || busyDownloads.has(button)) return;
  screen.hideError();
  busyDownloads.add(button);
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const { blob, filename } = await api.download(path, { format: "csv" });
    saveBlob(blob, filename || fallbackName);
    screen.say(`Downloaded ${filename || fallbackName}.`);
  } catch (error) {
    screen.failed(error, "Downloading");
  } finally {
    busyDownloads.delete(button);
    button.removeAttribute("aria-busy");
    renderTools();
  }
}

auditButton.addEventListener("click", () => toggleAudit());
exportButton.addEventListener("click", () => download(exportButton, api.sessionExportPath(screen.slug), `${screen.slug}.csv`));
auditCsvButton.addEventListener("click", () => {
  if (!screen.session) return;
  download(auditCsvButton, api.auditPath(screen.session.event), `${screen.session.event}-audit.csv`);
});
reasonInput.addEventListener("keydown", (event) => {
  // Enter in the reason field does not submit anything: the reason waits for the next action.
  if (event.key === "Enter") event.preventDefault();
});
renderTools();

olderButton.addEventListener("click", async () => {
  olderButton.disabled = true;
  try {
    await screen.loadOlder();
  } catch (error) {
    screen.failed(error, "Loading older comments");
  } finally {
    olderButton.disabled = false;
  }
});

screen.start();
