// Sanctions in the moderator console: the author menu on each comment (authormenu.js) posts a
// sanction (POST /v1/events/{event}/authors/{author_id}/sanctions, with the console's reason),
// and the `sanctions` panel lists what is in force in the event (GET …/sanctions: flags,
// timeouts that have not run out, bans), each with `lift` (DELETE …/sanctions, which lifts
// every sanction on that person). The panel loads when it opens, after each action here and
// every 30 s while open (a timeout runs out without a message). Comments that a sanction
// removes arrive in the stream as `comment.removed` events, like any removal.

import { describeError } from "./api.js";
import { h, setText, show } from "./dom.js";
import { authorName, authorNodes, formatWhen, moderatorName } from "./format.js";
import { authorMenu } from "./authormenu.js";

const REFRESH_MS = 30000;

const KINDS = { flag: "Flagged", timeout: "Paused", ban: "Banned" };

/** "Until 2:45 PM", "For the rest of the event", … */
export function untilText(sanction) {
  if (sanction.kind === "timeout") return sanction.until ? `Until ${formatWhen(sanction.until)}` : "For the rest of the event";
  if (sanction.kind === "ban") return "For this event";
  return "Until lifted: their posts wait for review";
}

/** What a moderator is told once a sanction is in force. */
function doneText(result, author) {
  const name = authorName(author);
  const s = result.sanction;
  let text;
  if (s.kind === "flag") text = `${name} is flagged: their next posts wait for review.`;
  else if (s.kind === "ban") text = `${name} is banned from posting in this event.`;
  else text = s.until ? `${name}'s posting is paused until ${formatWhen(s.until)}.` : `${name}'s posting is paused for the rest of the event.`;
  const removed = result.removed?.length || 0;
  const refused = result.refused?.length || 0;
  if (removed) text += ` ${removed === 1 ? "1 comment" : `${removed} comments`} removed.`;
  if (refused) text += ` ${refused === 1 ? "1 post" : `${refused} posts`} awaiting review refused.`;
  return text;
}

/**
 * sanctionsConsole({screen, reason, onChanged}) wires `show-sanctions` and the `sanctions`
 * panel. Returns {setAllowed(allowed), menuFor(key, comment, describedBy), refresh()}.
 * onChanged() runs after each sanction or lift (the console reloads its audit log).
 */
export function sanctionsConsole({ screen, reason, onChanged }) {
  const { api } = screen;
  const button = document.querySelector('[data-testid="show-sanctions"]');
  const panel = document.querySelector('[data-testid="sanctions"]');
  const list = panel.querySelector(".sanctions-list");
  const empty = panel.querySelector(".sanctions-empty");
  const status = panel.querySelector(".sanctions-status");
  const heading = panel.querySelector(".panel-title");
  const menus = new Map(); // key -> {authorId, menu}
  let allowed = false;
  let timer = null;
  let loading = false;
  let again = false;
  let shownKey = null;

  // --- The author menu ---------------------------------------------------------------------------

  /** The menu for a comment's author (the same element each time for one key), or null. */
  function menuFor(key, comment, describedBy) {
    if (!allowed || !comment?.author || typeof comment.author.id !== "number") return null;
    let entry = menus.get(key);
    if (!entry || entry.authorId !== comment.author.id) {
      const author = comment.author;
      entry = { authorId: author.id, menu: authorMenu({ author, describedBy, onAction: (sanction) => act(author, sanction) }) };
      menus.set(key, entry);
    }
    return entry.menu.element;
  }

  async function act(author, sanction) {
    if (!allowed || !screen.session) return;
    screen.hideError();
    const body = { kind: sanction.kind };
    if (sanction.kind === "timeout" && sanction.minutes) body.minutes = sanction.minutes;
    const why = reason();
    if (why) body.reason = why;
    if (sanction.remove_comments) body.remove_comments = true;
    try {
      const result = await api.sanction(screen.session.event, author.id, body);
      screen.say(doneText(result, author));
    } catch (error) {
      screen.failed(error, "Acting on the author");
    } finally {
      refresh();
      onChanged?.();
    }
  }

  // --- The panel ---------------------------------------------------------------------------------

  function toggle(open = panel.hidden) {
    panel.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    setText(button, open ? "Hide sanctions" : "Sanctions");
    clearInterval(timer);
    timer = null;
    if (open) {
      timer = setInterval(() => {
        if (document.visibilityState === "visible") refresh();
      }, REFRESH_MS);
      refresh();
    }
  }

  /** Load the sanctions in force (while the panel is open); one request at a time. */
  async function refresh() {
    if (panel.hidden || !allowed || !screen.session) return;
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    panel.setAttribute("aria-busy", "true");
    try {
      const data = await api.sanctions(screen.session.event);
      renderRows(data.items || []);
      setText(status, ""); // a live region: it speaks only when something is wrong
    } catch (error) {
      setText(status, `Could not load the sanctions: ${describeError(error, "Loading")}`);
    } finally {
      loading = false;
      panel.removeAttribute("aria-busy");
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  function row(item) {
    const authorId = `s-author-${item.id}`;
    return h(
      "li",
      { class: ["s-row", `s-${item.kind}`], testid: "sanction-row", data: { kind: item.kind, id: item.id, authorId: item.author?.id } },
      h(
        "div",
        { class: "s-head" },
        h("span", { class: "s-kind", testid: "sanction-kind", text: KINDS[item.kind] || item.kind }),
        h("span", { class: "author", testid: "author", id: authorId }, authorNodes(item.author, "")),
      ),
      h("p", { class: "s-until", testid: "until", text: untilText(item) }),
      item.reason ? h("p", { class: "s-reason", testid: "sanction-reason" }, "Reason: ", h("bdi", { dir: "auto", text: item.reason })) : null,
      h("p", { class: "s-by", testid: "sanction-by", text: `By ${moderatorName(item.created_by)}, ${formatWhen(item.created_at)}` }),
      h("button", {
        type: "button",
        class: "button",
        testid: "lift",
        "aria-describedby": authorId,
        text: "Lift",
        onclick: (event) => lift(item, event.currentTarget),
      }),
    );
  }

  /** Rebuilt only when the list changed (a periodic reload keeps the focus where it is). */
  function renderRows(items) {
    const key = JSON.stringify(items);
    if (key === shownKey) return;
    shownKey = key;
    const focusedId = list.contains(document.activeElement) ? document.activeElement.closest("li")?.dataset.id : null;
    list.replaceChildren(...items.map(row));
    show(empty, items.length === 0);
    if (focusedId) {
      const same = list.querySelector(`li[data-id="${focusedId}"] [data-testid="lift"]`);
      (same || list.querySelector('[data-testid="lift"]') || heading).focus({ preventScroll: true });
    }
  }

  async function lift(item, liftButton) {
    if (!allowed || !screen.session) return;
    screen.hideError();
    liftButton.disabled = true;
    const name = authorName(item.author);
    const index = [...list.children].findIndex((li) => li.dataset.id === String(item.id));
    try {
      const result = await api.lift(screen.session.event, item.author.id);
      screen.say(result.lifted ? `Lifted: ${name} can post again.` : `Nothing was in force on ${name} any more.`);
    } catch (error) {
      screen.failed(error, "Lifting");
      liftButton.disabled = false;
    }
    const hadFocus = list.contains(document.activeElement) || document.activeElement === liftButton || document.activeElement === document.body;
    await refresh();
    if (hadFocus && !liftButton.isConnected) {
      const lifts = list.querySelectorAll('[data-testid="lift"]');
      (lifts[Math.min(index, lifts.length - 1)] || heading).focus({ preventScroll: true });
    }
    onChanged?.();
  }

  function setAllowed(ok) {
    allowed = ok;
    button.disabled = !ok;
    if (!ok && !panel.hidden) toggle(false);
    if (!ok) {
      for (const { menu } of menus.values()) menu.close({ focus: false });
      menus.clear();
    }
  }

  button.addEventListener("click", () => toggle());
  return { setAllowed, menuFor, refresh };
}
