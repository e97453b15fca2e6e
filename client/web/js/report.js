// Reporting a comment to the moderators, from the board (POST /v1/comments/{id}/report): a
// `report` button on each published comment of someone else opens a small inline form (why, and
// optionally a few words); once sent, the comment says "Reported — thank you, a moderator will
// look at it" instead. Each person reports a comment once: the server answers `reported: false`
// to a repeat, which reads the same. The ids this person reported are kept in localStorage, so
// the board remembers them in this browser. Reporters are not told what the moderators decide.

import { ApiError, describeError } from "./api.js";
import { h, setText, store as local } from "./dom.js";
import { authorName } from "./format.js";

/** The reasons the server takes, in plain words. */
export const REPORT_REASONS = [
  ["personal", "Asks for or gives advice on a personal problem"],
  ["referral", "Asks for or offers a therapist, clinic or service"],
  ["advertising", "Advertising or self-promotion"],
  ["offensive", "Offensive or unkind"],
  ["off_topic", "Off topic"],
  ["other", "Something else"],
];

const REPORTED_TEXT = "Reported — thank you, a moderator will look at it";
const KEEP = 2000; // ids remembered per person

/**
 * reports = createReports({api, tokens, say, showError, hideError, onSanction}):
 * render(node, c, allowed) keeps the `report` button (or `reported` note, or the open form) of
 * one comment right; close() closes the open form; onSanction(error) is told of a 403
 * banned/timed_out (the board shows the sanction).
 */
export function createReports({ api, tokens, say, showError, hideError, onSanction }) {
  let open = null; // {id, node, form}
  const busy = new Set();

  const storeKey = () => (tokens.claims?.sub ? `backchannel.reported.${tokens.claims.sub}` : null);

  function reportedIds() {
    const key = storeKey();
    const ids = key ? local.get(key) : null;
    return new Set(Array.isArray(ids) ? ids : []);
  }

  function remember(id) {
    const key = storeKey();
    if (!key) return;
    const ids = [...reportedIds()].filter((other) => other !== id);
    ids.push(id);
    local.set(key, ids.slice(-KEEP));
  }

  function slotOf(node) {
    return node.parts?.actions?.querySelector(".report-slot") || null;
  }

  /** The comment's report control: a button, the note once reported, or nothing. */
  function render(node, c, allowed) {
    const slot = slotOf(node);
    if (!slot) return;
    const reported = reportedIds().has(c.id);
    const opened = open?.id === c.id && open.node === node;
    if (opened && (!allowed || reported)) close({ focus: false });
    const key = JSON.stringify([allowed, reported, open?.id === c.id, busy.has(c.id)]);
    if (node.reportKey === key && slot.firstChild) return;
    node.reportKey = key;
    const hadFocus = slot.contains(document.activeElement);
    if (reported) {
      slot.replaceChildren(h("span", { class: "reported", testid: "reported", tabindex: "-1", text: REPORTED_TEXT }));
    } else if (allowed) {
      slot.replaceChildren(
        h("button", {
          type: "button",
          class: "action report",
          testid: "report",
          "aria-expanded": open?.id === c.id ? "true" : "false",
          "aria-controls": open?.id === c.id ? `report-form-${c.id}` : null,
          "aria-describedby": `author-${c.id}`,
          text: "Report",
          onclick: () => (open?.id === c.id ? close() : openForm(node, c)),
        }),
      );
    } else {
      slot.replaceChildren();
    }
    if (hadFocus) slot.querySelector("button, [tabindex]")?.focus({ preventScroll: true });
  }

  function openForm(node, c) {
    close({ focus: false });
    const id = c.id;
    const ids = { reason: `report-reason-${id}`, detail: `report-detail-${id}`, title: `report-title-${id}`, hint: `report-hint-${id}` };
    const reason = h(
      "select",
      { id: ids.reason, name: "reason", required: true },
      h("option", { value: "", text: "Choose a reason…" }),
      REPORT_REASONS.map(([value, label]) => h("option", { value, text: label })),
    );
    const detail = h("textarea", { id: ids.detail, name: "detail", rows: "2", maxlength: "500", "aria-describedby": ids.hint });
    const form = h(
      "form",
      { class: "report-form", testid: "report-form", id: `report-form-${id}`, "aria-labelledby": ids.title, novalidate: true },
      h("p", { class: "report-title", id: ids.title }, "Report the comment by ", h("bdi", { dir: "auto", text: authorName(c.author) }), " to the moderators"),
      h("label", { class: "field-label", for: ids.reason, text: "What is wrong with it?" }),
      reason,
      h("label", { class: "field-label report-detail-label", for: ids.detail, text: "Anything to add? (optional)" }),
      detail,
      h("p", { class: "hint", id: ids.hint, text: "Only the moderators read reports. Its author is not told who reported it." }),
      h(
        "div",
        { class: "form-row" },
        h("button", { type: "submit", class: "button primary", testid: "send-report", text: "Send report" }),
        h("button", { type: "button", class: "button", testid: "cancel-report", text: "Cancel", onclick: () => close() }),
      ),
      h("p", { class: "form-status", role: "status" }),
    );
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(node, c, form);
    });
    open = { id, node, form };
    node.parts.actions.after(form);
    render(node, c, true);
    reason.focus({ preventScroll: true });
    form.scrollIntoView({ block: "nearest" });
  }

  /** Close the open form; focus goes back to its `report` button. */
  function close({ focus = true } = {}) {
    if (!open) return;
    const { node, form } = open;
    open = null;
    if (form.contains(document.querySelector('[data-testid="error"]'))) hideError();
    form.remove();
    const button = slotOf(node)?.querySelector('[data-testid="report"]');
    if (button) {
      button.setAttribute("aria-expanded", "false");
      button.removeAttribute("aria-controls");
      if (focus) button.focus({ preventScroll: true });
    } else if (focus) {
      node.article.focus({ preventScroll: true });
    }
    node.reportKey = null;
  }

  async function send(node, c, form) {
    const reason = form.elements.reason.value;
    if (!reason) {
      form.elements.reason.setAttribute("aria-invalid", "true");
      showError("Choose what is wrong with the comment.", form);
      form.elements.reason.focus();
      return;
    }
    form.elements.reason.removeAttribute("aria-invalid");
    if (busy.has(c.id)) return;
    busy.add(c.id);
    hideError();
    const button = form.querySelector('[data-testid="send-report"]');
    button.disabled = true;
    setText(form.querySelector(".form-status"), "Sending…");
    try {
      await api.report(c.id, reason, form.elements.detail.value.trim());
      busy.delete(c.id);
      remember(c.id);
      close({ focus: false });
      node.reportKey = null;
      render(node, c, true);
      slotOf(node)?.querySelector('[data-testid="reported"]')?.focus({ preventScroll: true });
      say(`${REPORTED_TEXT}.`);
    } catch (error) {
      busy.delete(c.id);
      button.disabled = false;
      setText(form.querySelector(".form-status"), "");
      if (error instanceof ApiError && onSanction(error)) {
        close({ focus: false });
        return;
      }
      showError(error instanceof ApiError && error.code === "not_published" ? "That comment is no longer on the board: there is nothing to report." : describeError(error, "Reporting"), form.isConnected ? form : null);
    }
  }

  return { render, close, isOpen: (id) => open?.id === id };
}
