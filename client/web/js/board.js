// The attendee board (board.html): a page of the session's comments, newest first, kept live.
//
// Rules that shape this file:
// - New top-level comments never push the page down under a reader: they wait behind the
//   "N new comments" bar, unless the reader has not scrolled (nothing they read moves then)
//   or the comment is the reader's own. Replies and restored comments appear in place, and
//   keepPosition() holds what the reader looks at where it was.
// - Everything is state set from events (state.js); the DOM is synced per comment id.
// - A post is never lost: its text and client key live in localStorage until the server
//   answered 200/201; a post in flight is retried with the same key.
// - A person's own comments (posted here, or whose author id is the one the feed's auth.ok or a
//   post's answer named) get Edit (for 5 minutes after posting, while comments are open; a
//   timer hides it when that time is up) and Delete (any time, confirmed inside the page).
// - A post the rules hold for review is seen by its author only: it shows in its place marked
//   "Awaiting review" (with the event's support message for a crisis) until a moderator approves
//   it (the public comment.approved event shows it to everyone) or rejects it ("Not published",
//   with the reason, until its author dismisses it). `pending` keeps these own posts; events
//   carry them redacted, so the author's own text is laid over what the events say.
// - A moderator's timeout or ban (sanctioned.js) replaces the forms with a calm message until it
//   ends; slow mode (slowmode.js) shows a banner and counts down to the next post; others'
//   comments can be reported (report.js).

import { ApiError, createApi, describeError, wakeRetries } from "./api.js";
import { Announcer, byTestId, fill, h, keepPosition, setText, show, store as local, uuid } from "./dom.js";
import { authorName, count, duration, formatDateTime, formatTime } from "./format.js";
import { badgesPart, bodyPart, headPart, heldPart, helpfulButton, permalinkHref, placeholderText, rejectedPart, supportPart, updateHelpful } from "./commentparts.js";
import { createEmbedView } from "./embedview.js";
import { Live } from "./live.js";
import { createReports } from "./report.js";
import { rejectedText, rejectionReason, tabStore } from "./review.js";
import { Standing, renderSanctioned, sanctionFromError, sanctionText } from "./sanctioned.js";
import { Pace, slowModeText, waitText } from "./slowmode.js";
import { CommentStore, WindowWatch, isPublic, isShown } from "./state.js";
import { Tokens } from "./token.js";
import { fatal, pageParams, showStatus, showTotal, showWatching, signInForm, tokenNeeded, whoami } from "./ui.js";

const params = pageParams();
const slug = params.session;
const embed = params.embed;
if (embed) document.documentElement.classList.add("embedded");

const tokens = new Tokens({ embed });
const api = createApi({ tokens });

const ui = {
  title: byTestId("session-title"),
  speakers: byTestId("speakers"),
  prompt: byTestId("prompt"),
  status: byTestId("status"),
  watching: byTestId("watching"),
  total: byTestId("total"),
  account: document.getElementById("account"),
  form: byTestId("comment-form"),
  closed: byTestId("closed"),
  slowMode: byTestId("slow-mode"),
  sanctioned: byTestId("sanctioned"),
  error: byTestId("error"),
  errorHome: byTestId("error").parentElement,
  errorNext: byTestId("error").nextSibling,
  newBar: byTestId("new-bar"),
  notice: byTestId("notice"),
  list: document.getElementById("comment-list"),
  older: byTestId("older"),
  newer: byTestId("newer"),
  announcer: new Announcer(byTestId("announcer")),
};
ui.textarea = ui.form.elements.body;
ui.question = ui.form.elements.question;
ui.post = ui.form.querySelector('[data-testid="post"]');
ui.formStatus = ui.form.querySelector(".form-status");

// --- State ---------------------------------------------------------------------------------------

let board = new CommentStore();
let nodes = new Map(); // comment id -> {article, main, slot, replies, more}
let tops = new Set(); // top-level ids this page holds (shown when isShown)
let queue = []; // new top-level ids waiting behind the bar, newest first
let newElsewhere = 0; // new top-level comments while an older page is open
let repliesNext = new Map(); // root id -> cursor for more replies
let page = { older: null, newer: null, low: 1, high: Infinity };
let atNewest = true;
let maxNumber = 0;
let session = null;
let accepting = null;
let myAuthorId = null;
const own = new Set(); // ids of comments this person posted here
let ownerSub; // whose comments `own` and myAuthorId are (the token's sub)
const EDIT_WINDOW_MS = 5 * 60 * 1000; // the server's edit window (EDIT_WINDOW_SECONDS)
let editTimer = null; // hides Edit buttons when their window closes
let editTimerAt = Infinity;
const editClosed = new Set(); // ids whose edit the server refused with edit_window_closed
let openReply = null; // {id, form}
let targetId = null;
let loading = null;
let live = null;
let marked = new Set();
let lastHead = 0; // the head of the last page loaded (where a feed starts)
let tokensSettled = false;
const pending = new Map(); // id -> {comment, support, reason}: own posts others cannot see
let mineMissing = false; // the server has no GET …/mine (404 not_found): do not ask again

const windowWatch = new WindowWatch((isAccepting, changed) => setAccepting(isAccepting, changed));
const standing = new Standing({ skew: () => windowWatch.skew, onChange: onStanding });
const pace = new Pace({ onTick: onPace });
const reports = createReports({
  api,
  tokens,
  say: (text) => ui.announcer.say(text),
  showError,
  hideError,
  onSanction: (error) => refusedBySanction(error, "Not sent"),
});
const embedView = createEmbedView({ list: ui.list, tokens });
let errorKind = null; // "sanction" or "slow" while the error shown is about one of those

// --- Drafts (localStorage): {body, question, key, pending} -----------------------------------------

const draftKey = (parentId = null) => `backchannel.draft.${slug}${parentId ? `.${parentId}` : ""}`;
const loadDraft = (parentId) => local.get(draftKey(parentId));
function saveDraft(parentId, draft) {
  if (!draft.body && !draft.key) local.remove(draftKey(parentId));
  else local.set(draftKey(parentId), draft);
}
const clearDraft = (parentId) => local.remove(draftKey(parentId));

// --- Helpful marks this person made (the server counts each once; this shows it) -----------------

function helpfulKey() {
  const sub = tokens.claims?.sub;
  return sub ? `backchannel.helpful.${sub}` : null;
}

function loadMarked() {
  const key = helpfulKey();
  const ids = key ? local.get(key) : null;
  marked = new Set(Array.isArray(ids) ? ids : []);
}

function saveMarked() {
  const key = helpfulKey();
  if (key) local.set(key, [...marked].slice(-2000));
}

// --- Errors and notices --------------------------------------------------------------------------

/** Show the one error element, inside the form the problem belongs to. */
function showError(text, form = null, kind = null) {
  errorKind = kind;
  const where = form && form !== ui.form ? form : null;
  if (where) where.append(ui.error);
  else if (ui.error.parentElement !== ui.errorHome) ui.errorHome.insertBefore(ui.error, ui.errorNext);
  setText(ui.error, text);
  show(ui.error, true);
}

function hideError() {
  errorKind = null;
  show(ui.error, false);
  setText(ui.error, "");
}

function showNotice(text) {
  setText(ui.notice, text || "");
  show(ui.notice, Boolean(text));
}

// --- The session ---------------------------------------------------------------------------------

function renderSession() {
  if (!session) return;
  setText(ui.title, session.title);
  document.title = `${session.title} · Comments`;
  const speakers = (session.speakers || []).filter(Boolean);
  const list = speakers.length > 1 ? new Intl.ListFormat("en", { type: "conjunction" }).format(speakers) : speakers[0] || "";
  setText(ui.speakers, list ? `with ${list}` : "");
  show(ui.speakers, Boolean(list));
  setText(ui.prompt, session.prompt || "What do you think?");
  pace.setSeconds(session.slow_mode);
  windowWatch.update(session);
  renderSlowMode();
}

function setAccepting(isAccepting, changed) {
  const first = accepting === null;
  accepting = isAccepting;
  if (embed) renderCompose();
  else keepPosition(".c-main", renderCompose);
  if (openReply) renderReplyState(openReply);
  refreshOwnAll();
  if (changed && !first) ui.announcer.say(isAccepting ? "Comments are open again." : "Comments are closed.");
}

/** Which of sign-in, form and "closed" show. */
function renderCompose() {
  const signedIn = Boolean(tokens.current);
  const open = accepting === true;
  const sanction = signedIn ? standing.current : null;
  show(ui.closed, accepting === false);
  const soon = session && session.state === "open" && windowBefore();
  setText(ui.closed, soon ? `Comments are closed. They open at ${formatDateTime(session.opens_at)}.` : "Comments are closed");
  show(ui.form, signedIn && open && !sanction);
  renderSanctioned(ui.sanctioned, sanction);
  renderSlowMode();
  renderAccount();
}

/** "Slow mode: one comment per 30 s" above the form, while it is on and the form is there. */
let slowSaid = null; // the slow mode last shown: a change is announced to those who may post

function renderSlowMode() {
  const text = slowModeText(session);
  const visible = Boolean(text) && accepting !== false && !(tokens.current && standing.current);
  setText(ui.slowMode, text);
  show(ui.slowMode, visible);
  if (!session) return;
  if (slowSaid !== null && text !== slowSaid && tokens.current && !standing.current && accepting === true) {
    ui.announcer.say(text ? `${text}.` : "Slow mode is off.");
  }
  slowSaid = text;
}

// --- Sanctions and slow mode ----------------------------------------------------------------------

/** Where someone writes or is told they cannot: focus there follows a sanction's changes. */
const CONTRIBUTING = ["comment-form", "reply-form", "edit-form", "report-form", "sanctioned"].map((t) => `[data-testid="${t}"]`).join(", ");

/** A timeout or ban began or ended (auth.ok, a notice, a refused post, or its time ran out). */
function onStanding(sanction, { live, before }) {
  const focusWasIn = Boolean(document.activeElement?.closest?.(CONTRIBUTING));
  if (sanction) {
    closeReply({ focus: false });
    for (const [id, node] of nodes) if (node.editing) closeEdit(id, { focus: false });
    reports.close({ focus: false });
  } else if (errorKind === "sanction") {
    hideError();
  }
  if (embed) renderCompose();
  else keepPosition(".c-main", renderCompose);
  refreshOwnAll();
  if (focusWasIn) (sanction ? ui.sanctioned : ui.textarea).focus({ preventScroll: true });
  if (!live || !tokens.current) return;
  if (sanction) ui.announcer.say(sanctionText(sanction));
  else ui.announcer.say(before?.kind === "ban" ? "A moderator has given back your ability to post." : "Your posting is no longer paused: you can post again.");
}

/**
 * A request refused with 403 banned or timed_out: the server knows of a sanction this page may
 * not have heard of yet. Show it (keeping what is known of it), and say what was not done.
 */
function refusedBySanction(error, what = "Not posted") {
  const sanction = sanctionFromError(error);
  if (!sanction) return false;
  const known = standing.current;
  const same = known && known.kind === sanction.kind;
  const next = same ? { ...known, until: sanction.until ?? known.until } : sanction;
  standing.set(next, { live: !same });
  const sentence = sanctionText(next);
  showError(`${what}: ${sentence[0].toLowerCase()}${sentence.slice(1)} Your text is kept here.`, null, "sanction");
  return true;
}

let paceShown = 0;

/**
 * The seconds left before one's next post changed: the buttons and the countdown follow. Its
 * start is not announced (the post's own announcement, or the refusal's alert, comes then; the
 * post button is described by the countdown); its end is, when a draft waits.
 */
function onPace(left) {
  renderPace();
  if (left === 0 && paceShown > 0) {
    if (errorKind === "slow") hideError();
    if (ui.textarea.value.trim() && !ui.form.hidden) ui.announcer.say("You can post again now.");
  }
  paceShown = left;
}

/** The post forms (the comment form, an open reply form) wait while slow mode asks them to. */
function renderPace() {
  const left = pace.left;
  for (const form of [ui.form, openReply?.form]) {
    if (!form) continue;
    const wait = form.querySelector('[data-testid="slow-wait"]');
    if (wait) {
      setText(wait, left > 0 ? waitText(left) : "");
      show(wait, left > 0);
    }
    const button = form.querySelector('button[type="submit"]');
    if (!form.elements.body.readOnly) button.disabled = postBlocked(form);
  }
}

/** Whether a post form's button waits (slow mode; a reply form also while comments are closed). */
function postBlocked(form) {
  if (form !== ui.form && form.dataset.testid !== "reply-form") return false;
  return pace.left > 0 || (form !== ui.form && accepting === false);
}

function windowBefore() {
  if (!session || !session.opens_at) return false;
  return Date.parse(session.opens_at) > Date.now() + windowWatch.skew;
}

let accountFor;
function renderAccount() {
  const key = `${tokens.current || ""}|${embed}`;
  if (accountFor === key || !tokensSettled) return;
  accountFor = key;
  if (tokens.current) {
    fill(ui.account, whoami(tokens, { signOut: !embed, onSignOut: onTokenChange }));
    return;
  }
  if (embed) {
    fill(ui.account, tokenNeeded("Sign in on the event's site to comment."));
    return;
  }
  fill(
    ui.account,
    signInForm({
      tokens,
      role: "attendee",
      heading: "Sign in to comment (demo)",
      onSignedIn: () => {
        ui.textarea.focus();
      },
    }),
  );
}

function onTokenChange() {
  const sub = tokens.claims?.sub || null;
  if (sub !== ownerSub) {
    // Someone else now: the comments of the one before are no longer "mine".
    ownerSub = sub;
    own.clear();
    myAuthorId = null;
    for (const id of [...pending.keys()]) forgetOwn(id);
    standing.set(null);
  }
  pace.setOwner(slug, sub, tokens.claims?.role);
  loadMarked();
  renderCompose();
  for (const id of nodes.keys()) refreshHelpful(id);
  refreshOwnAll();
}

// --- Rendering comments --------------------------------------------------------------------------

function actionsPart(c) {
  return h(
    "div",
    { class: "actions" },
    h("button", {
      type: "button",
      class: "action reply-link",
      testid: "reply-link",
      "aria-expanded": openReply && openReply.id === c.id ? "true" : "false",
      "aria-describedby": `author-${c.id}`,
      text: "Reply",
      onclick: () => toggleReply(c.id),
    }),
    helpfulButton(c, marked.has(c.id), () => markHelpful(c.id)),
    h("a", {
      class: "action permalink",
      testid: "permalink",
      href: permalinkHref(slug, c.id),
      target: embed ? "_blank" : null,
      rel: embed ? "noopener" : null,
      "aria-label": c.number ? `Link to comment ${c.number}` : "Link to this reply",
      text: "Link",
      onclick: (event) => followPermalink(event, c.id),
    }),
    h("span", { class: "report-slot" }),
    h("span", { class: "own-actions" }),
    h("span", { class: "reply-count" }),
  );
}

const PARTS = {
  head: [headPart, (c) => JSON.stringify([c.number, c.author, c.created_at, c.edited_at])],
  badges: [badgesPart, (c) => JSON.stringify([c.question, c.highlighted_at, c.answered_at])],
  body: [bodyPart, (c) => c.body],
};

/**
 * Show a comment's own content (not its replies). Only the parts whose data changed are
 * rebuilt, so an update (a count, a mark) never replaces the text someone is reading.
 */
function fillMain(node, c) {
  const { article, main } = node;
  article.dataset.status = c.status;
  for (const [attr, on] of [
    ["highlighted", c.highlighted_at],
    ["answered", c.answered_at],
    ["question", c.question],
  ]) {
    if (on) article.dataset[attr] = "true";
    else delete article.dataset[attr];
  }
  if (isPending(c)) {
    fillPending(node, c);
    return;
  }
  if (node.pendingKey) {
    node.pendingKey = null;
    node.public = null; // rebuilt below
  }
  const visibleNow = isPublic(c);
  if (node.public !== visibleNow || (!visibleNow && node.placeholderFor !== c.status)) {
    node.public = visibleNow;
    node.parts = {};
    node.keys = {};
    node.editing = null;
    node.confirming = false;
    node.ownKey = null;
    node.editUntil = null;
    if (!visibleNow) {
      node.placeholderFor = c.status;
      const number = c.parent_id === null && c.number ? h("span", { class: "number", testid: "number", text: `${c.number}.` }) : null;
      fill(main, h("div", { class: "c-head" }, number, h("p", { class: "placeholder", testid: "placeholder", text: placeholderText(c) })));
      return;
    }
    node.placeholderFor = null;
    const focused = main.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
    for (const [name, [build, key]] of Object.entries(PARTS)) {
      node.parts[name] = build(c);
      node.keys[name] = key(c);
    }
    node.parts.actions = actionsPart(c);
    fill(main, node.parts.head, node.parts.badges, node.parts.body, node.parts.actions);
    renderOwn(node, c);
    if (focused) main.querySelector(`[data-testid="${focused}"]`)?.focus();
  } else if (visibleNow) {
    for (const [name, [build, key]] of Object.entries(PARTS)) {
      const value = key(c);
      if (node.keys[name] === value) continue;
      const fresh = build(c);
      node.parts[name].replaceWith(fresh);
      node.parts[name] = fresh;
      node.keys[name] = value;
    }
    if (node.editing) show(node.parts.body, false); // the edit form stands in for it
    updateHelpful(node.parts.actions.querySelector('[data-testid="helpful"]'), c, marked.has(c.id));
    renderOwn(node, c);
  }
  if (visibleNow) {
    const replyCount = node.parts.actions.querySelector(".reply-count");
    setText(replyCount, c.reply_count > 0 ? count(c.reply_count, "reply", "replies") : "");
    show(replyCount, c.reply_count > 0);
  }
}

// --- One's own comments: edit (for 5 minutes) and delete --------------------------------------------

/** Whether this person wrote the comment (a comment not public shows no author, so: no). */
function isMine(c) {
  if (!tokens.current) return false;
  if (isPending(c)) return true;
  if (!isPublic(c)) return false;
  return own.has(c.id) || (myAuthorId !== null && Boolean(c.author) && c.author.id === myAuthorId);
}

/** When the comment's edit window closes, in this client's time (the server's clock decides). */
function editDeadline(c) {
  return Date.parse(c.created_at) + EDIT_WINDOW_MS - windowWatch.skew;
}

function canEdit(c) {
  return isPublic(c) && isMine(c) && accepting === true && !standing.current && !editClosed.has(c.id) && Date.now() < editDeadline(c);
}

/** Run refreshOwnAll() when the next Edit button's window closes. */
function wakeAt(when) {
  if (!(when < editTimerAt)) return;
  clearTimeout(editTimer);
  editTimerAt = when;
  const delay = Math.min(Math.max(when - Date.now() + 50, 0), 2 ** 31 - 1);
  editTimer = setTimeout(() => {
    editTimer = null;
    editTimerAt = Infinity;
    refreshOwnAll();
  }, delay);
}

function refreshOwnAll() {
  for (const [id, node] of nodes) {
    const c = board.get(id);
    if (c && node.public) renderOwn(node, c);
  }
}

/** The Edit and Delete buttons of one's own comment ("Delete? Yes / No" while confirming). */
function renderOwn(node, c) {
  const slot = node.parts?.actions?.querySelector(".own-actions");
  if (!slot) return;
  renderContribute(node, c);
  const mine = isMine(c);
  const editable = mine && !node.editing && canEdit(c);
  node.editUntil = editable ? editDeadline(c) : null;
  if (editable) wakeAt(node.editUntil);
  const key = JSON.stringify([mine, editable, Boolean(node.confirming), Boolean(node.busy)]);
  if (node.ownKey === key) return;
  node.ownKey = key;
  const focused = slot.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
  const described = `author-${c.id}`;
  if (!mine) {
    slot.replaceChildren();
  } else if (node.confirming) {
    fill(
      slot,
      h(
        "span",
        { class: "confirm-delete", role: "group", "aria-label": "Delete your comment?" },
        h("span", { class: "confirm-question", text: "Delete?" }),
        " ",
        h("button", {
          type: "button",
          class: "action danger",
          testid: "delete-confirm",
          "aria-describedby": described,
          disabled: node.busy,
          text: "Yes",
          onclick: () => deleteOwn(c.id),
        }),
        " / ",
        h("button", {
          type: "button",
          class: "action",
          testid: "delete-cancel",
          disabled: node.busy,
          text: "No",
          onclick: () => confirmDelete(c.id, false),
        }),
      ),
    );
  } else {
    fill(
      slot,
      editable
        ? h("button", {
            type: "button",
            class: "action edit",
            testid: "edit",
            "aria-describedby": described,
            title: `You can edit your comment until ${formatTime(node.editUntil + windowWatch.skew)}`,
            text: "Edit",
            onclick: () => openEdit(c.id),
          })
        : null,
      h("button", {
        type: "button",
        class: "action delete",
        testid: "delete",
        "aria-describedby": described,
        disabled: node.busy,
        text: "Delete",
        onclick: () => confirmDelete(c.id, true),
      }),
    );
  }
  if (focused) {
    const swap = { delete: "delete-cancel", "delete-cancel": "delete", "delete-confirm": "delete", edit: "delete" };
    (slot.querySelector(`[data-testid="${focused}"]`) || slot.querySelector(`[data-testid="${swap[focused]}"]`))?.focus();
  }
}

/** Reply and Report: offered to a signed-in person who may contribute (no sanction in force). */
function renderContribute(node, c) {
  const sanctioned = Boolean(tokens.current && standing.current);
  const reply = node.parts.actions.querySelector('[data-testid="reply-link"]');
  if (reply && reply.hidden !== sanctioned) reply.hidden = sanctioned;
  const reportable = Boolean(tokens.current) && !sanctioned && isPublic(c) && Boolean(c.author) && !isMine(c);
  reports.render(node, c, reportable);
}

function confirmDelete(id, on) {
  const node = nodes.get(id);
  const c = board.get(id);
  if (!node || !c || !(node.public || isPending(c)) || !node.parts?.actions) return;
  node.confirming = on;
  renderOwn(node, c);
  const slot = node.parts.actions.querySelector(".own-actions");
  slot.querySelector(`[data-testid="${on ? "delete-cancel" : "delete"}"]`)?.focus();
  if (on) ui.announcer.say("Delete your comment? Choose Yes or No.");
}

async function deleteOwn(id) {
  const node = nodes.get(id);
  if (!node || node.busy) return;
  node.busy = true;
  renderOwn(node, board.get(id));
  try {
    const result = await api.delete(id);
    const current = board.get(id);
    if (pending.has(id)) {
      forgetOwn(id, { ...result.comment, reply_count: current ? current.reply_count : 0 });
    } else if (current && isPublic(current) && !isPublic(result.comment)) {
      // Counts come from events (values to set); keep the ones this page already has.
      board.upsert({ ...result.comment, reply_count: current.reply_count, helpful_count: current.helpful_count });
    }
    const fresh = nodes.get(id);
    if (fresh) {
      fresh.busy = false;
      fresh.confirming = false;
    }
    const c = board.get(id);
    if (fresh && c && !visibleHere(c)) {
      // It vanishes: focus moves to what follows it (or its thread, or the list's heading).
      const article = fresh.article;
      const next = article.nextElementSibling || article.previousElementSibling || article.parentElement.closest('[data-testid="comment"]');
      keepPosition(".c-main", () => sync(id));
      (next && next.isConnected ? next : ui.total).focus({ preventScroll: true });
    } else {
      keepPosition(".c-main", () => sync(id));
      if (fresh?.article.isConnected) fresh.article.focus({ preventScroll: true });
    }
    ui.announcer.say(result.changed ? "Your comment was deleted." : "That comment was deleted already.");
  } catch (error) {
    const fresh = nodes.get(id);
    if (fresh) {
      fresh.busy = false;
      fresh.confirming = false;
      const c = board.get(id);
      if (c && (fresh.public || isPending(c))) renderOwn(fresh, c);
    }
    showError(describeError(error, "Deleting your comment"), fresh?.slot || null);
  }
}

function openEdit(id) {
  const node = nodes.get(id);
  const c = board.get(id);
  if (!node || !c || !node.public) return;
  if (node.editing) {
    node.editing.form.elements.body.focus();
    return;
  }
  if (!canEdit(c)) {
    renderOwn(node, c);
    return;
  }
  const fieldId = `edit-body-${id}`;
  const hintId = `edit-hint-${id}`;
  const textarea = h("textarea", { id: fieldId, name: "body", rows: "4", value: c.body || "", "aria-describedby": hintId });
  const form = h(
    "form",
    { class: "edit-form", testid: "edit-form", novalidate: true },
    h("label", { class: "field-label", for: fieldId, text: "Edit your comment" }),
    textarea,
    h("p", {
      class: "hint",
      id: hintId,
      text: `Comments can be edited for 5 minutes after posting (until ${formatTime(editDeadline(c) + windowWatch.skew)}).`,
    }),
    h(
      "div",
      { class: "form-row" },
      h("button", { type: "submit", class: "button primary", testid: "save-edit", text: "Save" }),
      h("button", { type: "button", class: "button", testid: "cancel-edit", text: "Cancel", onclick: () => closeEdit(id) }),
    ),
    h("p", { class: "form-status", role: "status" }),
  );
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeEdit(id);
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveEdit(id, form);
  });
  node.editing = { form };
  node.parts.body.after(form);
  show(node.parts.body, false);
  renderOwn(node, c);
  textarea.focus({ preventScroll: true });
  textarea.setSelectionRange(textarea.value.length, textarea.value.length);
  form.scrollIntoView({ block: "nearest" });
}

function closeEdit(id, { focus = true } = {}) {
  const node = nodes.get(id);
  if (!node || !node.editing) return;
  const { form } = node.editing;
  node.editing = null;
  if (form.contains(ui.error)) hideError();
  form.remove();
  if (node.parts?.body) show(node.parts.body, true);
  const c = board.get(id);
  if (c && node.public) renderOwn(node, c);
  if (focus) {
    const slot = node.parts?.actions?.querySelector(".own-actions");
    (slot?.querySelector('[data-testid="edit"]') || slot?.querySelector('[data-testid="delete"]') || node.article).focus({ preventScroll: true });
  }
}

async function saveEdit(id, form) {
  const textarea = form.elements.body;
  const body = textarea.value;
  if (!body.trim()) {
    showError("Write something before saving (or delete the comment).", form);
    textarea.focus();
    return;
  }
  const before = board.get(id);
  if (before && before.body === body) {
    closeEdit(id);
    return;
  }
  hideError();
  lock(form, true, "Saving…");
  try {
    const result = await api.edit(id, body);
    if (result.comment.status === "held") {
      // The edit brought it back to the review queue: others no longer see it.
      lock(form, false, "");
      closeEdit(id, { focus: false });
      keepPosition(".c-main", () => keepOwn(result.comment));
      nodes.get(id)?.article.focus({ preventScroll: true });
      ui.announcer.say("Your edit is awaiting review: a moderator will look at it before others see your comment again.");
      return;
    }
    const current = board.get(id);
    const edited = result.comment;
    if (current && isPublic(current) && (!current.edited_at || Date.parse(edited.edited_at) >= Date.parse(current.edited_at))) {
      board.upsert({ ...current, body: edited.body, edited_at: edited.edited_at });
    }
    lock(form, false, "");
    closeEdit(id);
    keepPosition(".c-main", () => sync(id));
    ui.announcer.say(result.changed ? "Your edit was saved." : "Nothing to change: the comment already says that.");
  } catch (error) {
    lock(form, false, "");
    if (error instanceof ApiError && refusedBySanction(error, "Not saved")) return;
    const code = error instanceof ApiError ? error.code : "";
    const text = code === "session_closed" ? "Comments are closed: your edit was not saved." : describeError(error, "Saving your edit");
    if (form.isConnected) showError(text, form);
    else showError(text, nodes.get(id)?.slot || null);
    if (code === "edit_window_closed") {
      // The server's clock says the time is up: no Edit button from now on.
      const node = nodes.get(id);
      const c = board.get(id);
      editClosed.add(id);
      if (node && c) renderOwn(node, c);
    }
  }
}

// --- One's own posts that others cannot see: awaiting review (held), or not published ----------

/** One's own post that only its author sees: held for review, or rejected. */
function isPending(c) {
  return Boolean(c) && (c.status === "held" || c.status === "rejected") && pending.has(c.id);
}

/** Shown on this board: what everyone sees (state.js), and one's own pending posts. */
function visibleHere(c) {
  return isShown(c) || isPending(c);
}

/** Top-level order, newest first: one's own posts without a number yet (held) come first. */
function topKey(c) {
  return c.number ?? Infinity;
}

function comesBefore(c, other) {
  if (c.parent_id !== null) return c.id < other.id;
  return topKey(c) > topKey(other) || (topKey(c) === topKey(other) && c.id > other.id);
}

const supportKey = () => `backchannel.support.${slug}.${tokens.claims?.sub || ""}`;

function supportFor(id) {
  return (tabStore.get(supportKey()) || {})[id] || null;
}

function rememberSupport(id, text, keep = true) {
  const all = tabStore.get(supportKey()) || {};
  if (keep) all[id] = text;
  else delete all[id];
  tabStore.set(supportKey(), all);
}

function dismissedKey() {
  const sub = tokens.claims?.sub;
  return sub ? `backchannel.dismissed.${sub}` : null;
}

function isDismissed(id) {
  const key = dismissedKey();
  const ids = key ? local.get(key) : null;
  return Array.isArray(ids) && ids.includes(id);
}

/**
 * Keep (or update) one's own held or rejected post and show it in its place: a top-level post
 * above the numbered ones (on the newest page), a reply under its parent.
 */
function keepOwn(comment, { support = null, reason = null } = {}) {
  if (!tokens.current || (comment.status !== "held" && comment.status !== "rejected")) return;
  const before = pending.get(comment.id);
  if (support) rememberSupport(comment.id, support);
  pending.set(comment.id, {
    comment,
    support: support || before?.support || supportFor(comment.id),
    reason: reason ?? before?.reason ?? null,
  });
  own.add(comment.id);
  lay(comment.id);
}

/** Put a pending post into this page's store and DOM, when it belongs on this page. */
function lay(id) {
  const { comment } = pending.get(id);
  const current = board.get(id);
  if (comment.parent_id === null) {
    if (!atNewest && !tops.has(id)) return;
    tops.add(id);
  } else if (!board.has(comment.parent_id)) {
    return;
  }
  board.upsert({ ...comment, reply_count: current ? current.reply_count : comment.reply_count });
  sync(id);
}

/** After a page load: lay the pending posts that belong on it; drop those it shows public. */
function layPending() {
  for (const [id, { comment }] of [...pending]) {
    const current = board.get(id);
    if (current && current.status !== "held" && current.status !== "rejected") {
      pending.delete(id);
      continue;
    }
    const here = comment.parent_id === null ? atNewest || tops.has(id) : board.has(comment.parent_id);
    if (!here) continue;
    if (comment.parent_id === null) tops.add(id);
    board.upsert({ ...comment, reply_count: current ? current.reply_count : comment.reply_count });
  }
}

/** Stop showing a pending post (someone else signed in, it was dismissed or deleted). */
function forgetOwn(id, replacement = null) {
  const entry = pending.get(id);
  if (!entry) return;
  pending.delete(id);
  rememberSupport(id, null, false);
  const current = board.get(id);
  if (current) board.upsert(replacement || { ...current, body: null, author: null });
  sync(id);
}

function rejectOwn(id, reason) {
  const entry = pending.get(id);
  if (!entry) return false;
  keepPosition(".c-main", () => keepOwn({ ...entry.comment, status: "rejected" }, { reason: reason ?? "" }));
  return true;
}

function dismissOwn(id) {
  const article = nodes.get(id)?.article;
  const next = article && (article.nextElementSibling || article.previousElementSibling || article.parentElement.closest('[data-testid="comment"]'));
  const key = dismissedKey();
  if (key) local.set(key, [...(local.get(key) || []), id].slice(-500));
  keepPosition(".c-main", () => forgetOwn(id));
  renderEmpty();
  (next && next.isConnected && next.matches('[data-testid="comment"], .total') ? next : ui.total).focus({ preventScroll: true });
  ui.announcer.say("Dismissed.");
}

const stamp = (time) => (time ? Date.parse(time) : 0);

/**
 * The person's held and rejected posts of this session (GET …/mine), so that a reload still
 * shows them. A server without the route answers 404 not_found: then only the posts held while
 * this page is open show.
 */
async function loadMine() {
  if (mineMissing || !tokens.current) return;
  const sub = tokens.claims?.sub;
  let data;
  try {
    data = await api.mine(slug);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404 && error.code === "not_found") mineMissing = true;
    return;
  }
  if (tokens.claims?.sub !== sub) return;
  keepPosition(".c-main", () => {
    for (const item of data?.items || []) {
      if (!item || (item.session && item.session !== slug)) continue;
      const current = board.get(item.id);
      // A page or event newer than this answer wins (unless the answer is a newer edit).
      if (isPublic(current) && !(stamp(item.edited_at) > stamp(current.edited_at))) continue;
      if (item.status === "held") keepOwn(item, { support: item.support_message || null });
      else if (item.status === "rejected" && !isDismissed(item.id)) keepOwn(item, { reason: rejectionReason(item) });
    }
  });
  renderEmpty();
}

/**
 * An event about one's own pending post: published now (it leaves `pending`), or still hidden
 * from others (it arrives redacted: the author keeps seeing their own text).
 */
function withOwnText(event) {
  const c = event.comment;
  if (!c || !pending.has(c.id)) return event;
  if (c.status !== "held" && c.status !== "rejected") {
    pending.delete(c.id);
    rememberSupport(c.id, null, false);
    return event;
  }
  const entry = pending.get(c.id);
  entry.comment = { ...entry.comment, status: c.status, number: c.number, reply_count: c.reply_count, edited_at: c.edited_at ?? entry.comment.edited_at };
  return { ...event, comment: entry.comment };
}

/** Show one's own pending post: its text, what happens to it, and nothing others could use. */
function fillPending(node, c) {
  const entry = pending.get(c.id);
  const key = JSON.stringify([c.status, c.body, c.edited_at, c.number, c.question, entry.support, entry.reason]);
  if (node.pendingKey === key) return;
  const focused = node.main.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
  Object.assign(node, { pendingKey: key, public: null, placeholderFor: null, parts: {}, keys: {}, editing: null, confirming: false, ownKey: null, editUntil: null });
  const held = c.status === "held";
  node.parts.actions = held ? h("div", { class: "actions" }, h("span", { class: "own-actions" })) : null;
  fill(
    node.main,
    headPart(c),
    entry.support ? supportPart(c.id, entry.support) : null,
    badgesPart(c),
    held ? heldPart(c) : rejectedPart(c, entry.reason, () => dismissOwn(c.id)),
    bodyPart(c),
    node.parts.actions,
  );
  if (held) renderOwn(node, c);
  if (focused) node.main.querySelector(`[data-testid="${focused}"]`)?.focus({ preventScroll: true });
}

function buildNode(c) {
  const article = h("article", {
    class: ["comment", c.parent_id === null ? "top" : "reply"],
    testid: "comment",
    data: { id: c.id },
    tabindex: "-1",
    "aria-labelledby": `author-${c.id}`,
  });
  const main = h("div", { class: "c-main" });
  const slot = h("div", { class: "reply-slot" });
  const replies = h("div", { class: "replies", testid: "replies" });
  article.append(main, slot, replies);
  const node = { id: c.id, article, main, slot, replies, more: null, editing: null, confirming: false, busy: false, ownKey: null };
  nodes.set(c.id, node);
  node.sortKey = topKey(c);
  fillMain(node, c);
  if (!isPublic(c) && !isPending(c)) article.removeAttribute("aria-labelledby");
  for (const childId of board.childrenOf(c.id)) {
    const child = board.get(childId);
    if (visibleHere(child)) replies.append(buildNode(child).article);
  }
  if (c.parent_id === null) renderMore(node);
  if (targetId === c.id) markTarget(article);
  return node;
}

/** "Show more replies" under a thread whose replies are not all loaded. */
function renderMore(node) {
  const cursor = repliesNext.get(node.id);
  if (!cursor) {
    node.more?.remove();
    node.more = null;
    return;
  }
  if (node.more) return;
  node.more = h("button", {
    type: "button",
    class: "action more-replies",
    text: "Show more replies",
    onclick: () => loadMoreReplies(node.id),
  });
  node.article.append(node.more);
}

function containerFor(c) {
  if (c.parent_id === null) return tops.has(c.id) ? ui.list : null;
  return nodes.get(c.parent_id)?.replies || null;
}

function insertInto(container, article, c) {
  let before = null;
  for (const sibling of container.children) {
    const other = board.get(sibling.dataset.id);
    if (!other) continue;
    if (comesBefore(c, other)) {
      before = sibling;
      break;
    }
  }
  container.insertBefore(article, before);
}

function removeNode(node) {
  for (const inner of node.article.querySelectorAll('[data-testid="comment"]')) nodes.delete(Number(inner.dataset.id));
  nodes.delete(node.id);
  if (openReply && !nodes.has(openReply.id)) openReply = null;
  if (node.article.contains(ui.error)) hideError();
  node.article.remove();
}

/** Make the DOM of one comment match the state (insert, update, remove). */
function sync(id) {
  const c = board.get(id);
  if (!c) return;
  const node = nodes.get(c.id);
  const container = containerFor(c);
  if (!container || !visibleHere(c)) {
    if (node) {
      removeNode(node);
      if (c.parent_id === null) renderEmpty();
    }
    return;
  }
  if (!node) {
    insertInto(container, buildNode(c).article, c);
    if (container === ui.list) renderEmpty();
    return;
  }
  fillMain(node, c);
  if (!isPublic(c) && openReply && openReply.id === c.id) closeReply();
  if (isPublic(c) || isPending(c)) node.article.setAttribute("aria-labelledby", `author-${c.id}`);
  else node.article.removeAttribute("aria-labelledby");
  if (c.parent_id === null && node.sortKey !== topKey(c)) reposition(node, c, container);
}

/** A top-level post that got its number (approved) moves to where its number puts it. */
function reposition(node, c, container) {
  node.sortKey = topKey(c);
  const focused = node.article.contains(document.activeElement) ? document.activeElement : null;
  node.article.remove();
  insertInto(container, node.article, c);
  focused?.focus({ preventScroll: true });
}

function refreshHelpful(id) {
  const node = nodes.get(id);
  const c = board.get(id);
  if (!node || !c || !isPublic(c) || !node.parts?.actions) return;
  updateHelpful(node.parts.actions.querySelector('[data-testid="helpful"]'), c, marked.has(c.id));
}

function renderCounts() {
  showTotal(ui.total, board.total);
}

function renderBar() {
  const waiting = queue.filter((id) => visibleHere(board.get(id))).length + newElsewhere;
  show(ui.newBar, waiting > 0);
  if (waiting > 0) setText(ui.newBar, `↑ ${count(waiting, "new comment")}`);
}

// --- The list and its pages ----------------------------------------------------------------------

function renderPage() {
  ui.list.replaceChildren();
  nodes = new Map();
  openReply = null;
  const ordered = [...tops].map((id) => board.get(id)).filter(Boolean).sort((a, b) => topKey(b) - topKey(a) || b.id - a.id);
  const fragment = document.createDocumentFragment();
  for (const c of ordered) if (visibleHere(c)) fragment.append(buildNode(c).article);
  ui.list.append(fragment);
  renderEmpty();
  renderCounts();
  renderBar();
  renderPaging();
}

/** "No comments yet" while the list shows none (it goes when the first one comes, and comes
 * back when the last one is deleted). */
function renderEmpty() {
  const note = ui.list.querySelector(":scope > .empty");
  if (ui.list.querySelector(':scope > [data-testid="comment"]')) {
    note?.remove();
    return;
  }
  const text = atNewest && !page.older ? "No comments yet. Be the first to share what this session sparked for you." : "No comments on this page.";
  if (note) setText(note, text);
  else ui.list.append(h("p", { class: "empty", text }));
}

function pageUrl({ before = null, after = null, comment = null } = {}) {
  const query = new URLSearchParams({ session: slug });
  if (embed) query.set("embed", "1");
  if (before) query.set("before", before);
  if (after) query.set("after", after);
  if (comment) query.set("comment", comment);
  return `${window.location.pathname}?${query}`;
}

function renderPaging() {
  ui.older.hidden = !page.older;
  ui.newer.hidden = !page.newer;
  if (page.older) ui.older.href = pageUrl({ before: page.older });
  if (page.newer) ui.newer.href = pageUrl({ after: page.newer });
}

/** Load a page of threads (first page when no cursor) and show it. */
async function loadPage({ before = null, after = null } = {}) {
  const data = await api.page(slug, { before, after });
  board = new CommentStore();
  board.session = session;
  board.loadPage(data);
  tops = new Set(data.threads.map((t) => t.comment.id));
  queue = [];
  newElsewhere = 0;
  repliesNext = new Map(data.threads.filter((t) => t.replies_next).map((t) => [t.comment.id, t.replies_next]));
  const numbers = data.threads.map((t) => t.comment.number);
  atNewest = data.newer === null;
  maxNumber = numbers.length ? Math.max(...numbers) : 0;
  page = {
    older: data.older,
    newer: data.newer,
    low: data.older && numbers.length ? Math.min(...numbers) : 1,
    high: data.newer && numbers.length ? Math.max(...numbers) : Infinity,
  };
  lastHead = data.head;
  layPending();
  renderPage();
  return data;
}

async function goToPage(cursor, { push = true, focus = true } = {}) {
  try {
    hideError();
    targetId = null;
    await loadPage(cursor);
    if (push) window.history.pushState({ cursor }, "", pageUrl(cursor));
    showNotice("");
    if (focus) {
      ui.total.focus({ preventScroll: true });
      ui.total.scrollIntoView({ block: "start" });
    }
  } catch (error) {
    showNotice(`Could not load that page: ${describeError(error, "Loading")}`);
  }
}

async function loadMoreReplies(rootId) {
  const cursor = repliesNext.get(rootId);
  if (!cursor) return;
  const data = await api.replies(rootId, cursor);
  keepPosition(".c-main", () => {
    for (const reply of data.replies) {
      if (!board.has(reply.id)) board.upsert(reply);
    }
    if (data.next) repliesNext.set(rootId, data.next);
    else repliesNext.delete(rootId);
    for (const reply of data.replies) sync(reply.id);
    const node = nodes.get(rootId);
    if (node) renderMore(node);
  });
}

// --- Permalinks ----------------------------------------------------------------------------------

function markTarget(article) {
  for (const other of document.querySelectorAll("[data-target]")) {
    other.removeAttribute("data-target");
    other.classList.remove("is-target");
  }
  article.dataset.target = "true";
  article.classList.add("is-target");
}

function revealTarget(id) {
  const node = nodes.get(id);
  if (!node) return false;
  targetId = id;
  markTarget(node.article);
  node.article.scrollIntoView({ block: "center" });
  node.article.focus({ preventScroll: true });
  return true;
}

/** Open the board at a comment, on whichever page shows it. */
async function openAt(commentId) {
  const id = Number(commentId);
  let location;
  try {
    location = await api.locate(id);
  } catch (error) {
    await loadPage({});
    showNotice(error instanceof ApiError && error.status === 404 ? "That comment does not exist." : `Could not find that comment: ${describeError(error, "Finding it")}`);
    return;
  }
  if (location.comment.session !== slug) {
    await loadPage({});
    showNotice("That comment belongs to another session.");
    return;
  }
  targetId = id;
  await loadPage({ before: location.before });
  while (!nodes.has(id) && repliesNext.has(location.root_id)) {
    await loadMoreReplies(location.root_id);
  }
  if (!revealTarget(id)) {
    targetId = null;
    showNotice(location.comment.status === "deleted" ? "That comment was deleted by its author." : "That comment has been removed by a moderator.");
  }
}

function followPermalink(event, id) {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (!nodes.has(id)) return; // let the browser open it
  event.preventDefault();
  if (!embed) window.history.pushState({ comment: id }, "", pageUrl({ comment: id }));
  revealTarget(id);
}

// --- Live ----------------------------------------------------------------------------------------

/**
 * Whether new top-level comments can show at once: the reader has not scrolled into the list
 * (its heading is still in view, or below it), so they appear where the reading starts.
 * Someone reading further down gets the bar instead, and nothing moves under them.
 */
function readerAtTop() {
  if (embed) return embedView.atTop();
  if (window.scrollY <= 0) return true;
  return ui.total.getBoundingClientRect().top >= 0;
}

function hold(c) {
  if (c.parent_id === null) {
    if (atNewest && c.number > maxNumber) return true;
    return c.number >= page.low && c.number <= page.high;
  }
  return tops.has(c.root_id) || queue.includes(c.root_id) || board.has(c.parent_id);
}

function placeTop(c, change) {
  if (queue.includes(c.id)) {
    if (!isShown(c)) queue = queue.filter((id) => id !== c.id);
    return;
  }
  if (atNewest && c.number > maxNumber) {
    if (!isShown(c)) return;
    maxNumber = c.number;
    const mine = own.has(c.id) || (myAuthorId !== null && c.author && c.author.id === myAuthorId);
    if (mine || readerAtTop()) {
      flushQueue();
      tops.add(c.id);
      sync(c.id);
      if (!mine && ARRIVALS.has(change.event.kind)) ui.announcer.say(`New comment from ${authorName(c.author)}.`);
    } else {
      queue.unshift(c.id);
      const waiting = queue.filter((id) => isShown(board.get(id))).length;
      ui.announcer.say(`${count(waiting, "new comment")}: use the button at the top to show them.`);
    }
    return;
  }
  tops.add(c.id);
  sync(c.id);
}

/** Events that bring a comment to everyone for the first time. */
const ARRIVALS = new Set(["comment.created", "comment.approved"]);

function applyEvent(received) {
  const event = withOwnText(received);
  const change = board.apply(event, hold);
  if (change.session) {
    session = event.session;
    renderSession();
  }
  // Hidden ancestors this page never held, brought by a restored or approved reply: they show
  // as placeholders, as a page would show them.
  for (const id of change.parents) {
    const parent = board.get(id);
    if (parent.parent_id !== null) continue;
    tops.add(id);
    maxNumber = Math.max(maxNumber, parent.number || 0);
  }
  // Ancestors first (top-down), so a reply has its parent to sit under.
  for (const id of [...change.counts].reverse()) sync(id);
  const c = change.comment;
  if (c) {
    if (c.parent_id === null && !tops.has(c.id)) placeTop(c, change);
    else if (c.parent_id === null && atNewest && c.number > maxNumber) {
      maxNumber = c.number; // one's own post, approved: it was shown (awaiting review) already
      sync(c.id);
    } else {
      const shownBefore = nodes.has(c.id);
      sync(c.id);
      if (!shownBefore && nodes.has(c.id) && change.isNew && c.parent_id !== null && !own.has(c.id)) {
        ui.announcer.say(`New reply from ${authorName(c.author)}.`);
      }
    }
  } else if (
    event.comment &&
    ARRIVALS.has(event.kind) &&
    event.comment.parent_id === null &&
    isPublic(event.comment) &&
    !atNewest &&
    !board.has(event.comment.id)
  ) {
    newElsewhere += 1;
  }
  for (const id of change.helpful) refreshHelpful(id);
}

function onEvents(events) {
  const run = () => {
    for (const event of events) applyEvent(event);
  };
  if (embed) run();
  else keepPosition(".c-main, .comments > .total", run);
  renderCounts();
  renderBar();
}

/** Show what waited behind the bar; returns the ids shown, newest first. */
function flushQueue() {
  const shown = queue.filter((id) => isShown(board.get(id)));
  queue = [];
  for (const id of shown) tops.add(id);
  for (const id of shown) sync(id);
  renderBar();
  return shown.sort((a, b) => board.get(b).number - board.get(a).number);
}

function showQueued() {
  if (!atNewest || newElsewhere > 0) {
    goToPage({});
    return;
  }
  const shown = flushQueue();
  const first = shown.length ? nodes.get(shown[0]) : null;
  ui.total.scrollIntoView({ block: "start" });
  (first?.article || ui.total).focus({ preventScroll: true });
  ui.announcer.say(shown.length ? `Showing ${count(shown.length, "new comment")}.` : "No new comments.");
}

// --- Posting -------------------------------------------------------------------------------------

function lock(form, locked, text = "") {
  const textarea = form.elements.body;
  const button = form.querySelector('button[type="submit"]');
  textarea.readOnly = locked;
  button.disabled = locked || postBlocked(form);
  if (form.elements.question) form.elements.question.disabled = locked;
  const status = form.querySelector(".form-status");
  if (status) setText(status, text);
}

/** Post from a form (the comment form, or a reply form with parentId). */
async function submit(form, parentId = null) {
  const textarea = form.elements.body;
  const body = textarea.value;
  if (!body.trim()) {
    showError("Write something before posting.", form);
    textarea.focus();
    return;
  }
  if (!tokens.current) {
    showError("Sign in to post: use the sign-in form above.", form);
    ui.account.querySelector("input, button")?.focus();
    return;
  }
  if (accepting === false) {
    showError("Comments are closed: your comment was not posted. Your text is kept here.", form);
    return;
  }
  if (standing.current) {
    const sentence = sanctionText(standing.current);
    showError(`Not posted: ${sentence[0].toLowerCase()}${sentence.slice(1)} Your text is kept here.`, null, "sanction");
    return;
  }
  if (pace.left > 0) {
    showError(`Slow mode: ${waitText(pace.left).toLowerCase()}. Your text is kept here.`, form, "slow");
    return;
  }
  hideError();
  const question = parentId === null && Boolean(form.elements.question?.checked);
  const saved = loadDraft(parentId);
  const key = saved && saved.pending && saved.key && saved.body === body ? saved.key : uuid();
  saveDraft(parentId, { body, question, key, pending: true });
  await send(form, parentId, { body, question, key });
}

async function send(form, parentId, { body, question, key }) {
  lock(form, true, "Posting…");
  const payload = { body, client_key: key };
  if (parentId !== null) payload.parent_id = parentId;
  if (question) payload.question = true;
  try {
    const result = await api.post(slug, payload, {
      onWait: () => lock(form, true, "No connection: your comment is kept and will be posted as soon as the connection is back."),
    });
    clearDraft(parentId);
    if (form.isConnected) {
      form.elements.body.value = "";
      if (form.elements.question) form.elements.question.checked = false;
    }
    lock(form, false, "");
    posted(result.comment, form, result.support_message);
  } catch (error) {
    saveDraft(parentId, { body, question, key: null, pending: false });
    if (error instanceof ApiError && error.code === "slow_mode") pace.refused(error.details?.retry_after ?? error.retryAfter, error.details?.slow_mode);
    lock(form, false, "");
    if (error instanceof ApiError && refusedBySanction(error)) return;
    if (error instanceof ApiError && error.code === "slow_mode") {
      const interval = error.details?.slow_mode ? `one comment per ${duration(error.details.slow_mode)}; ` : "";
      showError(`Slow mode: ${interval}${waitText(pace.left || error.retryAfter).toLowerCase()}. Your text is kept here.`, form.isConnected ? form : null, "slow");
      return;
    }
    showError(describeError(error, "Posting"), form.isConnected ? form : null);
    if (error instanceof ApiError && error.status === 401) {
      if (!tokens.canRefresh) tokens.clear();
      onTokenChange();
    }
  }
}

/** The server stored this person's comment: show it at once, where it belongs. */
function posted(comment, form, support = null) {
  own.add(comment.id);
  const at = Date.parse(comment.created_at) - windowWatch.skew;
  pace.posted(Number.isNaN(at) ? Date.now() : Math.min(at, Date.now()));
  if (comment.author && comment.author.id && comment.author.id !== myAuthorId) {
    myAuthorId = comment.author.id;
    refreshOwnAll();
  }
  if (comment.status === "held") {
    postedHeld(comment, form, support);
    return;
  }
  if (!board.has(comment.id)) board.upsert(comment);
  if (comment.parent_id !== null) {
    if (openReply && openReply.id === comment.parent_id) closeReply({ focus: false });
    sync(comment.id);
    const node = nodes.get(comment.id);
    if (node) {
      node.article.scrollIntoView({ block: "nearest" });
      node.article.focus({ preventScroll: true });
    }
    ui.announcer.say("Your reply was posted.");
    return;
  }
  if (!atNewest) {
    goToPage({}).then(() => revealOwn(comment.id));
    return;
  }
  // Its number is the newest: whatever waited behind the bar shows with it.
  queue = queue.filter((id) => id !== comment.id);
  flushQueue();
  tops.add(comment.id);
  maxNumber = Math.max(maxNumber, comment.number || 0);
  sync(comment.id);
  revealOwn(comment.id);
  if (form === ui.form) ui.textarea.blur();
}

/** A post held for review shows to its author only, in its place, saying so. */
function postedHeld(comment, form, support) {
  if (comment.parent_id !== null && openReply && openReply.id === comment.parent_id) closeReply({ focus: false });
  const reveal = () => {
    keepOwn(comment, { support });
    renderEmpty();
    const node = nodes.get(comment.id);
    if (node) {
      node.article.scrollIntoView({ block: "nearest" });
      node.article.focus({ preventScroll: true });
    }
    ui.announcer.say(
      support
        ? "Your comment is awaiting review. There is a message for you with it."
        : "Your comment is awaiting review: a moderator will look at it before others see it.",
    );
  };
  if (comment.parent_id === null && !atNewest) goToPage({}).then(reveal);
  else reveal();
  if (form === ui.form) ui.textarea.blur();
}

function revealOwn(id) {
  const node = nodes.get(id);
  if (!node) return;
  node.article.classList.add("is-new");
  node.article.scrollIntoView({ block: "nearest" });
  node.article.focus({ preventScroll: true });
  setTimeout(() => node.article.classList.remove("is-new"), 4000);
  ui.announcer.say("Your comment was posted.");
}

// --- Reply forms ---------------------------------------------------------------------------------

function toggleReply(id) {
  if (openReply && openReply.id === id) closeReply();
  else if (!(tokens.current && standing.current)) openReplyForm(id);
}

function openReplyForm(id, { focus = true } = {}) {
  closeReply({ focus: false });
  const node = nodes.get(id);
  const c = board.get(id);
  if (!node || !c) return null;
  const fieldId = `reply-body-${id}`;
  const draft = loadDraft(id);
  const textarea = h("textarea", { id: fieldId, name: "body", rows: "3", value: draft?.body || "" });
  textarea.addEventListener("input", () => {
    const saved = loadDraft(id) || {};
    saveDraft(id, { ...saved, body: textarea.value, pending: false, key: saved.pending ? null : saved.key || null });
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeReply();
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  const closedNote = h("p", { class: "reply-closed", hidden: true, text: "Comments are closed: replies cannot be posted now." });
  const form = h(
    "form",
    { class: "reply-form", testid: "reply-form", novalidate: true },
    h("label", { class: "field-label", for: fieldId }, "Reply to ", h("bdi", { dir: "auto", text: authorName(c.author) })),
    textarea,
    h(
      "div",
      { class: "form-row" },
      h("button", { type: "submit", class: "button primary", testid: "post-reply", "aria-describedby": `reply-wait-${id}`, text: "Post reply" }),
      h("button", { type: "button", class: "button", text: "Cancel", onclick: () => closeReply() }),
      h("span", { class: "slow-wait", testid: "slow-wait", id: `reply-wait-${id}`, hidden: true }),
    ),
    h("p", { class: "form-status", role: "status" }),
    closedNote,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(form, id);
  });
  node.slot.replaceChildren(form);
  openReply = { id, form, closedNote };
  node.main.querySelector('[data-testid="reply-link"]')?.setAttribute("aria-expanded", "true");
  renderReplyState(openReply);
  if (focus) {
    textarea.focus({ preventScroll: true });
    form.scrollIntoView({ block: "nearest" });
  }
  return openReply;
}

function renderReplyState(reply) {
  show(reply.closedNote, accepting === false);
  renderPace();
}

function closeReply({ focus = true } = {}) {
  if (!openReply) return;
  const { id, form } = openReply;
  openReply = null;
  if (form.contains(ui.error)) hideError();
  form.remove();
  const link = nodes.get(id)?.main.querySelector('[data-testid="reply-link"]');
  if (link) {
    link.setAttribute("aria-expanded", "false");
    if (focus) link.focus();
  }
}

// --- Helpful -------------------------------------------------------------------------------------

async function markHelpful(id) {
  const node = nodes.get(id);
  if (!tokens.current) {
    showError("Sign in to mark comments helpful: use the sign-in form above.", node?.slot || null);
    ui.account.querySelector("input, button")?.focus();
    return;
  }
  if (marked.has(id)) return;
  marked.add(id);
  saveMarked();
  refreshHelpful(id);
  try {
    const result = await api.helpful(id);
    const c = board.get(id);
    if (c && result.helpful_count > (c.helpful_count || 0)) board.setHelpful(id, result.helpful_count);
    refreshHelpful(id);
    ui.announcer.say(result.marked ? "Marked helpful." : "You had marked this helpful already.");
  } catch (error) {
    marked.delete(id);
    saveMarked();
    refreshHelpful(id);
    showError(describeError(error, "Marking it helpful"), nodes.get(id)?.slot || null);
  }
}

// --- Start ---------------------------------------------------------------------------------------

function wireForm() {
  const draft = loadDraft(null);
  if (draft) {
    ui.textarea.value = draft.body || "";
    ui.question.checked = Boolean(draft.question);
  }
  const save = () => {
    const saved = loadDraft(null) || {};
    const same = saved.body === ui.textarea.value;
    saveDraft(null, {
      body: ui.textarea.value,
      question: ui.question.checked,
      key: same ? saved.key || null : null,
      pending: same ? Boolean(saved.pending) : false,
    });
  };
  ui.textarea.addEventListener("input", save);
  ui.question.addEventListener("change", save);
  ui.textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      ui.form.requestSubmit();
    }
  });
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(ui.form, null);
  });
  ui.newBar.addEventListener("click", showQueued);
  for (const [link, which] of [
    [ui.older, "older"],
    [ui.newer, "newer"],
  ]) {
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      goToPage(which === "older" ? { before: page.older } : { after: page.newer });
    });
  }
  window.addEventListener("popstate", () => {
    const now = pageParams();
    if (now.comment) openAt(now.comment);
    else goToPage({ before: now.before, after: now.after }, { push: false });
  });
}

/** Posts that were on their way when the page closed are sent again (same client key). */
function resumePending() {
  const draft = loadDraft(null);
  if (draft && draft.pending && draft.key && draft.body && tokens.current) {
    ui.textarea.value = draft.body;
    send(ui.form, null, { body: draft.body, question: Boolean(draft.question), key: draft.key });
  }
  const prefix = `${draftKey(null)}.`;
  let keys = [];
  try {
    keys = Object.keys(localStorage).filter((k) => k.startsWith(prefix));
  } catch {
    keys = [];
  }
  for (const key of keys) {
    const parentId = Number(key.slice(prefix.length));
    const reply = local.get(key);
    if (!parentId || !reply || !reply.pending || !reply.key || !tokens.current) continue;
    const opened = nodes.has(parentId) && !openReply ? openReplyForm(parentId, { focus: false }) : null;
    if (opened) send(opened.form, parentId, { body: reply.body, question: false, key: reply.key });
    else {
      api
        .post(slug, { body: reply.body, parent_id: parentId, client_key: reply.key })
        .then((result) => {
          clearDraft(parentId);
          posted(result.comment, null, result.support_message);
        })
        .catch(() => saveDraft(parentId, { ...reply, pending: false, key: null }));
    }
  }
}

async function main() {
  if (!slug) {
    fatal("The address names no session: add ?session=<slug>.");
    showStatus(ui.status, "stopped", "no session");
    setText(ui.title, "Comments");
    for (const section of document.querySelectorAll(".compose, .comments")) section.hidden = true;
    return;
  }
  if (embed) embedView.start();
  wireForm();
  tokens.onChange(onTokenChange);
  const tokenReady = tokens.init({ wait: 3000 });

  // Everything above the list (session, sign-in, form) is laid out before the list shows, so
  // a permalink's target stays where it was scrolled to.
  try {
    const sessionRequest = api.session(slug);
    await tokenReady;
    tokensSettled = true;
    loadMarked();
    session = await sessionRequest;
    board.session = session;
    windowWatch.setSkew(session.server_time);
    renderSession();
    renderCompose();
    if (params.comment) await openAt(params.comment);
    else await loadPage({ before: params.before, after: params.after });
    if (session.head < lastHead) {
      session = await api.session(slug);
      keepPosition(".c-main", renderSession);
    }
  } catch (error) {
    fatal(error instanceof ApiError && error.code === "unknown_session" ? `There is no session "${slug}".` : describeError(error, "Loading the board"));
    showStatus(ui.status, "stopped", error.code === "unknown_session" ? "unknown session" : "could not load");
    setText(ui.title, "Comments");
    for (const section of document.querySelectorAll(".compose, .comments")) section.hidden = true;
    return;
  }

  // The page's head is where the feed starts (openAt loaded a page of its own).
  live = new Live({
    slug,
    since: lastHead,
    tokens,
    onEvents,
    onState: (state, detail) => {
      showStatus(ui.status, state, detail);
      if (state === "live") wakeRetries();
    },
    onWatching: (n) => showWatching(ui.watching, n),
    onAuth: (message) => {
      if (message.author_id !== null && message.author_id !== undefined && message.author_id !== myAuthorId) {
        myAuthorId = message.author_id;
        refreshOwnAll();
      }
      if ("sanction" in message) standing.set(message.sanction); // what is in force, on every (re)connection
      loadMine(); // notices are not replayed: what happened to one's posts meanwhile
    },
    onNotice,
    onReload: async () => {
      const data = await loadPage(currentCursor());
      live.resume(data.head);
    },
  });
  live.start();
  resumePending();
}

/** A private message about one of this person's comments (docs/protocol.md, `notice`). */
function onNotice(notice) {
  if (notice.kind === "author.sanctioned" || notice.kind === "author.reinstated") {
    if (notice.event && session && notice.event !== session.event) return; // another event's
    standing.set(notice.kind === "author.sanctioned" ? notice.sanction : null, { live: true });
    return;
  }
  if (notice.session !== slug) return;
  switch (notice.kind) {
    case "comment.held": {
      const c = notice.comment;
      if (!c || c.status !== "held") return;
      const known = pending.has(c.id);
      keepPosition(".c-main", () => keepOwn(c, { support: notice.support_message || null }));
      renderEmpty();
      if (!known) ui.announcer.say("One of your comments is awaiting review: a moderator will look at it before others see it.");
      break;
    }
    case "comment.approved":
      ui.announcer.say("A moderator approved your comment: everyone can see it now.");
      break;
    case "comment.rejected":
      if (rejectOwn(notice.comment_id, notice.reason || "")) ui.announcer.say(`${rejectedText(notice.reason)}.`);
      break;
    case "comment.removed":
      ui.announcer.say("A moderator removed one of your comments.");
      break;
    case "comment.restored":
      ui.announcer.say("A moderator restored one of your comments.");
      break;
    default:
      break;
  }
}

function currentCursor() {
  const now = pageParams();
  return { before: now.before, after: now.after };
}

main();
