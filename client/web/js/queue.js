// The review queue of the moderator console: the event's posts waiting for a moderator (held by
// the rules or by pre-moderation, or reported by attendees), crises first, each with why it
// waits, what matched, its author, session, time and full text. Approve or reject one (buttons,
// or a and r on the focused row) or many (select with the checkboxes or x; A and R act on the
// selection). The reason typed in the console's header goes with each action.
//
// Kept live by the feed's `queue` messages (docs/protocol.md): `held` and `reported` add a row,
// `reviewed` removes it on every console. Those messages are not replayed, so the queue is
// loaded again after each (re)connection and every 30 s. When another moderator acted first,
// the server answers `changed: false` with who did: the row says so for a few seconds and goes.

import { ApiError } from "./api.js";
import { fill, h, paragraphs, reconcile, setText, show } from "./dom.js";
import { authorName, authorNodes, timeElement } from "./format.js";
import { queueItem, reasonHelp, reasonLabel } from "./review.js";
import { replyContext } from "./staff.js";

const HANDLED_MS = 6000; // how long a row handled elsewhere stays to say who handled it
const GONE_MS = 30000; // a reviewed id stays out of reloads this long (a reload may predate it)
const REFRESH_MS = 30000;

/**
 * reviewQueue({screen, reason, authorTools}) where screen is staff.js's, reason() the header's
 * reason, and authorTools(comment, describedBy) the author menu for a row (or null).
 * Returns {setAllowed(allowed), load(), onMessage(message), handleKey(event), enter()}.
 */
export function reviewQueue({ screen, reason, authorTools = () => null }) {
  const { api } = screen;
  const panel = document.querySelector('[data-testid="queue"]');
  const list = document.getElementById("queue-list");
  const countEl = panel.querySelector('[data-testid="queue-count"]');
  const empty = panel.querySelector(".queue-empty");
  const status = panel.querySelector(".queue-status");
  const approveSelected = panel.querySelector('[data-testid="approve-selected"]');
  const rejectSelected = panel.querySelector('[data-testid="reject-selected"]');

  const entries = new Map(); // id -> {item, row, handled, timer, arrived}
  let order = []; // ids, in queue order
  const selected = new Set();
  const gone = new Map(); // id -> when it was reviewed
  const busy = new Set();
  let current = null; // the id holding the roving tabindex
  let allowed = false;
  let loading = false;
  let again = false;
  let refresh = null;

  // --- Rows --------------------------------------------------------------------------------------

  function fillRow(entry) {
    const { item, row } = entry;
    const c = item.comment;
    const id = c.id;
    const urgent = item.reason === "crisis";
    const reported = item.reason === "reported"; // published: approve keeps it, reject removes it
    row.className = ["q-item", urgent ? "is-urgent" : null, entry.handled ? "is-handled" : null].filter(Boolean).join(" ");
    row.dataset.reason = item.reason;
    row.dataset.session = item.session || "";
    const reasonId = `q-reason-${id}`;
    const authorId = `q-author-${id}`;
    row.setAttribute("aria-labelledby", `${reasonId} ${authorId}`);
    const focused = row.contains(document.activeElement) && document.activeElement !== row ? document.activeElement.dataset.testid : null;
    const here = item.session === screen.slug;
    const parent = here && c.parent_id !== null ? screen.store.get(c.parent_id) : null;
    fill(
      row,
      h(
        "div",
        { class: "q-head" },
        h("input", {
          type: "checkbox",
          class: "q-select",
          testid: "select",
          "aria-label": `Select the post by ${authorName(c.author)}`,
          checked: selected.has(id),
          disabled: !allowed || entry.handled,
          onchange: (event) => select(id, event.target.checked),
        }),
        h("span", { class: "q-reason", testid: "hold-reason", id: reasonId, text: reasonLabel(item.reason) }),
        item.reports > 0
          ? h("span", {
              class: "q-reports",
              testid: "reports",
              text: `Reported ${item.reports === 1 ? "once" : `${item.reports} times`}${item.report_reasons.length ? `: ${item.report_reasons.map((r) => String(r).replace(/_/g, " ")).join(", ")}` : ""}`,
            })
          : null,
        timeElement(c.created_at),
      ),
      h("p", { class: "q-help", text: reasonHelp(item.reason) }),
      item.match ? h("p", { class: "q-match", testid: "match" }, "Matched: ", h("bdi", { dir: "auto", text: item.match })) : null,
      h(
        "p",
        { class: "q-meta" },
        h("span", { class: "author", testid: "author", id: authorId }, c.author ? authorNodes(c.author, "") : "An attendee"),
        " · ",
        h("span", { class: "q-session", testid: "item-session", text: here ? "this session" : `session ${item.session}` }),
      ),
      here ? replyContext(c, parent, parent ? { removed: "a removed comment", deleted: "a comment deleted by its author" } : "a comment not loaded here") : c.parent_id !== null ? h("p", { class: "context", text: "↳ a reply" }) : null,
      h("div", { class: "body", testid: "item-body" }, paragraphs(c.body)),
      h(
        "div",
        { class: "q-actions" },
        h("button", {
          type: "button",
          class: "button primary",
          testid: "approve",
          disabled: !allowed || entry.handled,
          text: reported ? "Keep" : "Approve",
          onclick: () => review([id], true),
        }),
        h("button", {
          type: "button",
          class: "button danger",
          testid: "reject",
          disabled: !allowed || entry.handled,
          text: reported ? "Remove" : "Reject",
          onclick: () => review([id], false),
        }),
        allowed && !entry.handled ? authorTools(c, authorId) : null,
        entry.handled ? h("p", { class: "handled-by", testid: "handled-by", text: entry.handled }) : null,
      ),
    );
    if (focused) (row.querySelector(`[data-testid="${focused}"]:not(:disabled)`) || row).focus({ preventScroll: true });
  }

  function entryFor(item) {
    const id = item.comment.id;
    let entry = entries.get(id);
    if (!entry) {
      const row = h("article", { testid: "queue-item", data: { id }, tabindex: "-1" });
      row.addEventListener("focusin", () => setCurrent(id));
      entry = { item, row, key: null, handled: null, timer: null, arrived: Date.now() };
      entries.set(id, entry);
    }
    // Rebuilt only when something shows differently (reloads repeat most rows unchanged).
    const key = JSON.stringify(item);
    entry.item = item;
    if (entry.key !== key) {
      entry.key = key;
      fillRow(entry);
    }
    return entry;
  }

  /** The server's order, for a row that arrives live: crises first, then oldest (by id). */
  function rank(id) {
    return [entries.get(id)?.item.reason === "crisis" ? 0 : 1, id];
  }

  function place(ids, id) {
    const [urgency] = rank(id);
    const at = ids.findIndex((other) => {
      const [otherUrgency] = rank(other);
      return otherUrgency > urgency || (otherUrgency === urgency && other > id);
    });
    return at === -1 ? [...ids, id] : [...ids.slice(0, at), id, ...ids.slice(at)];
  }

  function render() {
    order = order.filter((id) => entries.has(id));
    reconcile(
      list,
      order.map((id) => entries.get(id).row),
    );
    const waiting = order.filter((id) => !entries.get(id).handled).length;
    setText(countEl, String(waiting));
    countEl.dataset.count = String(waiting);
    show(empty, order.length === 0);
    for (const id of [...selected]) if (!entries.has(id) || entries.get(id).handled) selected.delete(id);
    const n = selected.size;
    setText(approveSelected, n ? `Approve selected (${n})` : "Approve selected");
    setText(rejectSelected, n ? `Reject selected (${n})` : "Reject selected");
    approveSelected.disabled = !allowed || n === 0;
    rejectSelected.disabled = !allowed || n === 0;
    if (current === null || !entries.has(current)) setCurrent(order.length ? order[0] : null);
  }

  function add(item) {
    const id = item.comment.id;
    gone.delete(id);
    const known = entries.has(id);
    const entry = entryFor(item);
    if (!known) {
      entry.arrived = Date.now();
      order = place(order, id);
    }
    render();
  }

  /** A row leaves; focus, if it was there, goes to the row that takes its place. */
  function drop(id) {
    const entry = entries.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    const hadFocus = entry.row.contains(document.activeElement);
    const index = order.indexOf(id);
    entries.delete(id);
    selected.delete(id);
    order = order.filter((other) => other !== id);
    if (current === id) current = null;
    const next = order[Math.min(index, order.length - 1)];
    if (next !== undefined) setCurrent(next);
    render();
    if (hadFocus) (next !== undefined ? entries.get(next).row : panel.querySelector(".queue-title")).focus({ preventScroll: true });
  }

  /** Another moderator got there first: say who, briefly, then let the row go. */
  function handledElsewhere(id, comment, by) {
    const entry = entries.get(id);
    if (!entry) return;
    const who = by || "another moderator";
    if (comment?.status === "published") entry.handled = `Already approved by ${who}`;
    else if (comment?.status === "rejected") entry.handled = `Already rejected by ${who}`;
    else if (comment?.status === "removed") entry.handled = `Already removed by ${who}`;
    else if (comment?.status === "deleted") entry.handled = "Its author deleted it";
    else entry.handled = `Already handled by ${who}`;
    selected.delete(id);
    fillRow(entry);
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => drop(id), HANDLED_MS);
    render();
  }

  function setCurrent(id) {
    if (current === id) return;
    const previous = current !== null ? entries.get(current) : null;
    if (previous) previous.row.tabIndex = -1;
    current = id;
    const entry = id !== null ? entries.get(id) : null;
    if (entry) entry.row.tabIndex = 0;
  }

  function select(id, on) {
    if (!entries.has(id) || entries.get(id).handled) return;
    if (on) selected.add(id);
    else selected.delete(id);
    const box = entries.get(id).row.querySelector('[data-testid="select"]');
    if (box) box.checked = on;
    render();
  }

  // --- Approve and reject ------------------------------------------------------------------------

  async function review(ids, approve, { bulk = false } = {}) {
    const chosen = ids.filter((id) => entries.has(id) && !entries.get(id).handled && !busy.has(id));
    if (!allowed || !screen.session || chosen.length === 0) return;
    screen.hideError();
    const why = reason();
    for (const id of chosen) {
      busy.add(id);
      entries.get(id).row.setAttribute("aria-busy", "true");
    }
    try {
      const results = bulk
        ? await api.reviewMany(screen.session.event, approve, chosen, why)
        : [await (approve ? api.approve(chosen[0], why) : api.reject(chosen[0], why))];
      let done = 0;
      for (const result of results) {
        const id = result.comment.id;
        busy.delete(id);
        if (result.changed) {
          done += 1;
          gone.set(id, Date.now());
          drop(id);
        } else {
          entries.get(id)?.row.removeAttribute("aria-busy");
          handledElsewhere(id, result.comment, result.reviewed_by);
        }
      }
      const verb = approve ? "Approved" : "Rejected";
      const others = results.length - done;
      const words = [];
      if (done) words.push(done === 1 ? `${verb}.` : `${verb} ${done} posts.`);
      if (others) words.push(others === 1 ? "One was handled already." : `${others} were handled already.`);
      screen.say(words.join(" "));
    } catch (error) {
      screen.failed(error, approve ? "Approving" : "Rejecting");
      load();
    } finally {
      for (const id of chosen) {
        busy.delete(id);
        entries.get(id)?.row.removeAttribute("aria-busy");
      }
      render();
    }
  }

  approveSelected.addEventListener("click", () => review([...selected], true, { bulk: true }));
  rejectSelected.addEventListener("click", () => review([...selected], false, { bulk: true }));

  // --- Loading and live messages -----------------------------------------------------------------

  async function load() {
    if (!allowed || !screen.session) return;
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    const started = Date.now();
    panel.setAttribute("aria-busy", "true");
    try {
      const data = await api.queue(screen.session.event);
      merge((data.items || []).map((raw) => queueItem(raw)).filter(Boolean), started);
      setText(status, "");
    } catch (error) {
      setText(status, `Could not load the queue: ${error instanceof ApiError ? error.message || error.code : String(error?.message || error)}`);
    } finally {
      loading = false;
      panel.removeAttribute("aria-busy");
      if (again) {
        again = false;
        load();
      }
    }
  }

  /** The server's list wins, except for what happened after it was read. */
  function merge(items, started) {
    const now = Date.now();
    for (const [id, at] of gone) if (now - at > GONE_MS) gone.delete(id);
    const listed = new Set();
    let next = [];
    for (const item of items) {
      const id = item.comment.id;
      if (gone.has(id) || listed.has(id)) continue;
      listed.add(id);
      const entry = entries.get(id);
      if (entry && (entry.handled || busy.has(id))) {
        next.push(id);
        continue;
      }
      entryFor(item);
      next.push(id);
    }
    for (const id of order) {
      const entry = entries.get(id);
      if (listed.has(id)) continue;
      if (entry.handled || busy.has(id) || entry.arrived >= started) next = place(next, id);
      else {
        clearTimeout(entry.timer);
        entries.delete(id);
      }
    }
    order = next;
    render();
  }

  function onMessage(message) {
    if (!allowed) return;
    if (message.kind === "held" || message.kind === "reported") {
      const item = queueItem(message.item);
      if (item) add(item);
    } else if (message.kind === "reviewed") {
      const id = message.comment_id;
      gone.set(id, Date.now());
      const entry = entries.get(id);
      if (!entry || entry.handled || busy.has(id)) return;
      const focused = entry.row.contains(document.activeElement);
      drop(id);
      if (focused) {
        const verb = { published: "approved", rejected: "rejected", removed: "removed" }[message.status] || "handled";
        screen.say(`That post was ${verb} by ${message.reviewed_by || "another moderator"}.`);
      }
    }
  }

  function setAllowed(ok) {
    const changed = ok !== allowed;
    allowed = ok;
    panel.hidden = !ok;
    clearInterval(refresh);
    refresh = null;
    if (!ok) {
      for (const entry of entries.values()) clearTimeout(entry.timer);
      entries.clear();
      selected.clear();
      order = [];
    } else {
      refresh = setInterval(() => {
        if (document.visibilityState === "visible") load();
      }, REFRESH_MS);
    }
    if (changed) for (const entry of entries.values()) fillRow(entry);
    render();
    if (ok && changed) load();
  }

  // --- Keyboard ----------------------------------------------------------------------------------

  function rowOf(target) {
    const row = target?.closest?.('[data-testid="queue-item"]');
    return row && list.contains(row) ? row : null;
  }

  function move(from, step) {
    if (!order.length) return;
    const index = order.indexOf(from);
    const next = order[Math.min(Math.max(index === -1 ? 0 : index + step, 0), order.length - 1)];
    setCurrent(next);
    const row = entries.get(next).row;
    row.focus({ preventScroll: true });
    row.scrollIntoView({ block: "nearest" });
  }

  /** Focus the queue's current row (j or k pressed outside both lists); false when empty. */
  function enter() {
    if (!allowed || !order.length) return false;
    move(current ?? order[0], 0);
    return true;
  }

  /** The queue's keys; returns whether the key was the queue's (the caller prevents default). */
  function handleKey(event) {
    if (!allowed) return false;
    if (event.key === "A" || event.key === "R") {
      if (selected.size === 0) return false;
      review([...selected], event.key === "A", { bulk: true });
      return true;
    }
    const row = rowOf(event.target);
    if (!row) return false;
    const id = Number(row.dataset.id);
    switch (event.key) {
      case "j":
      case "ArrowDown":
        move(id, 1);
        return true;
      case "k":
      case "ArrowUp":
        move(id, -1);
        return true;
      case "a":
        review([id], true);
        return true;
      case "r":
        review([id], false);
        return true;
      case "x":
        select(id, !selected.has(id));
        return true;
      default:
        return false;
    }
  }

  return { setAllowed, load, onMessage, handleKey, enter };
}
