// Slow mode in the moderator console: what is in force now ("Slow mode on: 30 s (automatic)",
// kept live by `session.updated` events), the moderator's own interval (`slow_mode_seconds`) and
// the rate above which slow mode switches itself on (`auto_slow_threshold`, posts per minute;
// 0: never), saved with PATCH /v1/sessions/{slug} and the console's reason. A field being edited
// is not overwritten by a live update.

import { describeError } from "./api.js";
import { h, setText } from "./dom.js";
import { duration, formatTime } from "./format.js";
import { slowModeState } from "./slowmode.js";

const MAX_THRESHOLD = 100000;

/** slowModeControls({screen, reason, onChanged}) -> {setAllowed(allowed), render()}. */
export function slowModeControls({ screen, reason, onChanged }) {
  const { api } = screen;
  const group = document.querySelector('[data-testid="slow-mode-controls"]');
  const state = group.querySelector('[data-testid="slow-mode"]');
  const seconds = group.querySelector('[data-testid="slow-mode-seconds"]');
  const threshold = group.querySelector('[data-testid="auto-slow-threshold"]');
  const save = group.querySelector('[data-testid="save-slow-mode"]');
  const hint = group.querySelector(".slow-hint");
  const status = group.querySelector(".slow-status");
  const problem = group.querySelector(".slow-problem");
  let allowed = false;
  let busy = false;
  let said = null; // what is in force, as last shown (a change made elsewhere is announced)
  const dirty = new Set();

  /** The select offers the session's own interval too when it is not one of the usual ones. */
  function offer(value) {
    if ([...seconds.options].some((o) => Number(o.value) === value)) return;
    const option = h("option", { value: String(value), text: duration(value) });
    const after = [...seconds.options].find((o) => Number(o.value) > value);
    seconds.insertBefore(option, after || null);
  }

  function render() {
    const session = screen.session;
    if (!session) return;
    const now = slowModeState(session);
    if (said !== null && now !== said && !busy) screen.say(`${now}.`);
    said = now;
    setText(state, now);
    state.dataset.seconds = String(session.slow_mode || 0);
    if (!dirty.has(seconds)) {
      offer(Number(session.slow_mode_seconds) || 0);
      seconds.value = String(session.slow_mode_seconds || 0);
    }
    if (!dirty.has(threshold)) threshold.value = String(session.auto_slow_threshold || 0);
    setText(
      hint,
      `Automatic slow mode (0: never): above that rate, measured over ${duration(session.auto_slow_window || 60)}, it switches itself on at one comment per ${duration(session.auto_slow_seconds || 30)}, and off again below half the rate. Presenters and moderators are never slowed.`,
    );
    renderEnabled();
  }

  function renderEnabled() {
    seconds.disabled = !allowed || busy;
    threshold.disabled = !allowed || busy;
    save.disabled = !allowed || busy;
  }

  function fail(text) {
    setText(problem, text);
    problem.hidden = !text;
  }

  async function submit() {
    if (!allowed || busy || !screen.session) return;
    const limit = Number(threshold.value);
    if (threshold.value.trim() === "" || !Number.isInteger(limit) || limit < 0 || limit > MAX_THRESHOLD) {
      threshold.setAttribute("aria-invalid", "true");
      fail(`Posts per minute: a whole number from 0 (never) to ${MAX_THRESHOLD}.`);
      threshold.focus();
      return;
    }
    threshold.removeAttribute("aria-invalid");
    fail("");
    const patch = { slow_mode_seconds: Number(seconds.value), auto_slow_threshold: limit };
    const why = reason();
    if (why) patch.reason = why;
    busy = true;
    renderEnabled();
    group.setAttribute("aria-busy", "true");
    try {
      const result = await api.updateSession(screen.slug, patch);
      dirty.clear();
      if (result?.session) screen.setSession(result.session);
      setText(status, `${result?.changed ? "Saved" : "Nothing changed"} at ${formatTime(new Date())}`);
      screen.say(`${slowModeState(result?.session || screen.session)}.`);
    } catch (error) {
      fail(describeError(error, "Saving slow mode"));
    } finally {
      busy = false;
      group.removeAttribute("aria-busy");
      render();
      onChanged?.();
    }
  }

  for (const field of [seconds, threshold]) {
    field.addEventListener("input", () => dirty.add(field));
    field.addEventListener("change", () => dirty.add(field));
  }
  threshold.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      submit();
    }
  });
  save.addEventListener("click", submit);

  function setAllowed(ok) {
    allowed = ok;
    renderEnabled();
  }

  return { setAllowed, render };
}
