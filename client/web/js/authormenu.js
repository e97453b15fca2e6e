// The moderator console's menu of actions on a comment's author (docs/protocol.md, "Reports,
// sanctions and slow mode"): flag them (their posts wait for review), pause their posting for
// 10 minutes, an hour or the rest of the event, or ban them from posting in the event; a
// checkbox also removes every comment they posted in the event. A ban, and anything that
// removes their comments, is confirmed inside the page first.
//
// A disclosure: the `author-actions` button opens a group of buttons below it (aria-expanded);
// focus moves into it, the arrow keys move between its controls, Escape closes it and gives the
// focus back to the button, and so does a click elsewhere on the page.

import { h, setText } from "./dom.js";
import { authorName } from "./format.js";

/** [testid, label, sanction] for each action of the menu. */
export const AUTHOR_ACTIONS = [
  ["flag", "Flag: hold their next posts for review", { kind: "flag" }],
  ["timeout-10", "Pause their posting for 10 minutes", { kind: "timeout", minutes: 10 }],
  ["timeout-60", "Pause their posting for 1 hour", { kind: "timeout", minutes: 60 }],
  ["timeout-event", "Pause their posting for the rest of the event", { kind: "timeout", minutes: null }],
  ["ban", "Ban them from posting in this event", { kind: "ban" }],
];

let made = 0;

/** What the confirmation asks: "Ban Maya from posting in this event and remove all their comments?" */
function question(name, sanction, removeAll) {
  const also = removeAll ? " and remove all their comments in this event" : "";
  if (sanction.kind === "ban") return `Ban ${name} from posting in this event${also}?`;
  if (sanction.kind === "flag") return `Flag ${name}${also}?`;
  const length = sanction.minutes ? (sanction.minutes === 60 ? "for 1 hour" : `for ${sanction.minutes} minutes`) : "for the rest of the event";
  return `Pause ${name}'s posting ${length}${also}?`;
}

/**
 * authorMenu({author, describedBy, onAction}) -> {element, close()}. onAction(sanction) gets
 * {kind, minutes, remove_comments} and returns a promise (the menu waits for it, then closes).
 */
export function authorMenu({ author, describedBy, onAction }) {
  const n = (made += 1);
  const ids = { panel: `author-menu-${n}`, title: `author-menu-${n}-title`, remove: `author-menu-${n}-remove`, question: `author-menu-${n}-question` };
  const name = authorName(author);
  let pending = null; // the sanction waiting for confirmation
  let busy = false;

  const toggle = h(
    "button",
    {
      type: "button",
      class: "button author-toggle",
      testid: "author-actions",
      "aria-expanded": "false",
      "aria-controls": ids.panel,
      "aria-describedby": describedBy || null,
      onclick: () => (panel.hidden ? open() : close()),
    },
    "Author",
    h("span", { class: "caret", "aria-hidden": "true", text: " ▾" }),
  );
  const removeAll = h("input", { type: "checkbox", id: ids.remove, testid: "remove-all" });
  const items = AUTHOR_ACTIONS.map(([testid, label, sanction]) =>
    h("button", {
      type: "button",
      class: ["am-item", testid === "ban" ? "danger" : null],
      testid,
      text: label,
      onclick: () => choose(sanction),
    }),
  );
  const ask = h("p", { class: "am-question", id: ids.question });
  const yes = h("button", { type: "button", class: "button danger", testid: "sanction-confirm", text: "Yes", onclick: () => run() });
  const no = h("button", { type: "button", class: "button", testid: "sanction-cancel", text: "No, go back", onclick: () => back() });
  const confirm = h("div", { class: "am-confirm", role: "group", "aria-labelledby": ids.question, hidden: true }, ask, h("div", { class: "form-row" }, yes, no));
  const choices = h(
    "div",
    { class: "am-choices" },
    items,
    h("label", { class: "check am-remove", for: ids.remove }, removeAll, " Also remove their comments in this event"),
    h("p", { class: "am-hint", text: "The reason typed above goes with it." }),
  );
  const panel = h(
    "div",
    { class: "am-panel", id: ids.panel, role: "group", "aria-labelledby": ids.title, hidden: true },
    h("p", { class: "am-title", id: ids.title }, "Act on ", h("bdi", { dir: "auto", text: name }), " in this event"),
    choices,
    confirm,
  );
  const element = h("span", { class: "author-menu" }, toggle, panel);

  function controls() {
    return [...panel.querySelectorAll("button, input")].filter((el) => !el.closest("[hidden]") && !el.disabled);
  }

  function outside(event) {
    if (!element.contains(event.target)) close({ focus: false });
  }

  function open() {
    panel.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    document.addEventListener("pointerdown", outside, true);
    items[0].focus();
  }

  function close({ focus = true } = {}) {
    if (panel.hidden) return;
    back({ focus: false });
    panel.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
    document.removeEventListener("pointerdown", outside, true);
    if (focus && toggle.isConnected) toggle.focus();
  }

  function choose(sanction) {
    pending = sanction;
    if (sanction.kind !== "ban" && !removeAll.checked) {
      run();
      return;
    }
    setText(ask, question(name, sanction, removeAll.checked));
    choices.hidden = true;
    confirm.hidden = false;
    no.focus();
  }

  /** From the confirmation back to the choices. */
  function back({ focus = true } = {}) {
    if (confirm.hidden) return;
    confirm.hidden = true;
    choices.hidden = false;
    pending = null;
    if (focus) items[0].focus();
  }

  async function run() {
    if (!pending || busy) return;
    const sanction = { ...pending, remove_comments: removeAll.checked };
    busy = true;
    panel.setAttribute("aria-busy", "true");
    for (const el of [...items, removeAll, yes, no]) el.disabled = true;
    try {
      await onAction(sanction);
    } finally {
      busy = false;
      panel.removeAttribute("aria-busy");
      for (const el of [...items, removeAll, yes, no]) el.disabled = false;
      removeAll.checked = false;
      close();
    }
  }

  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      if (!confirm.hidden) back();
      else close();
      return;
    }
    const list = controls();
    const at = list.indexOf(document.activeElement);
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: list.length - 1 };
    if (!(event.key in moves) || !list.length) return;
    event.preventDefault();
    list[(moves[event.key] + list.length) % list.length].focus();
  });

  return { element, close };
}
