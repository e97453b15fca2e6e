// The event's own rules, in the moderator console (GET and PATCH /v1/events/{event}/rules): its
// banned words (a post with one is refused), its suspect words (a post with one waits for
// review), one per line, and the support message shown to the author of a post held as a
// crisis. They add to the built-in rules every event has (docs/moderation.md). Collapsed until
// opened; loaded each time it opens, so it shows what another moderator saved meanwhile.

import { describeError } from "./api.js";
import { setText } from "./dom.js";
import { formatTime } from "./format.js";

const WORD_MAX = 100; // the server's limit for one entry

/** One entry per line: trimmed, blank lines dropped, each entry once (ignoring case). */
export function parseLines(text) {
  const seen = new Set();
  const words = [];
  for (const line of String(text ?? "").split(/\r?\n/)) {
    const word = line.trim().replace(/\s+/g, " ");
    if (!word || seen.has(word.toLowerCase())) continue;
    seen.add(word.toLowerCase());
    words.push(word);
  }
  return words;
}

/** rulesEditor({screen}) wires the `show-rules` button and the `rules-editor` panel. */
export function rulesEditor({ screen }) {
  const { api } = screen;
  const button = document.querySelector('[data-testid="show-rules"]');
  const panel = document.querySelector('[data-testid="rules-editor"]');
  const form = panel.querySelector("form");
  const banned = panel.querySelector('[data-testid="banned-words"]');
  const suspect = panel.querySelector('[data-testid="suspect-words"]');
  const support = panel.querySelector('[data-testid="support-message-input"]');
  const save = panel.querySelector('[data-testid="save-rules"]');
  const saved = panel.querySelector('[data-testid="rules-saved"]');
  const problem = panel.querySelector(".rules-problem");
  const fields = [banned, suspect, support];
  let allowed = false;
  let busy = false;

  function setBusy(on) {
    busy = on;
    for (const field of fields) field.readOnly = on;
    save.disabled = on || !allowed;
    if (on) panel.setAttribute("aria-busy", "true");
    else panel.removeAttribute("aria-busy");
  }

  function say(text, isProblem = false) {
    setText(problem, isProblem ? text : "");
    problem.hidden = !isProblem;
    setText(saved, isProblem ? "" : text);
  }

  function show(rules) {
    banned.value = (rules.banned_words || []).join("\n");
    suspect.value = (rules.suspect_words || []).join("\n");
    support.value = rules.support_message || "";
  }

  async function load() {
    if (!allowed || !screen.session) return;
    say("");
    setBusy(true);
    try {
      show(await api.rules(screen.session.event));
    } catch (error) {
      say(`Could not load the rules: ${describeError(error, "Loading the rules")}`, true);
    } finally {
      setBusy(false);
    }
  }

  function toggle(open = panel.hidden) {
    panel.hidden = !open;
    button.setAttribute("aria-expanded", open ? "true" : "false");
    setText(button, open ? "Hide rules" : "Rules");
    if (open) load();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!allowed || busy || !screen.session) return;
    const patch = {
      banned_words: parseLines(banned.value),
      suspect_words: parseLines(suspect.value),
      support_message: support.value.trim(),
    };
    const tooLong = [...patch.banned_words, ...patch.suspect_words].find((word) => word.length > WORD_MAX);
    if (tooLong) {
      say(`One entry is longer than ${WORD_MAX} characters: “${tooLong.slice(0, 40)}…”. Put one word or phrase per line.`, true);
      return;
    }
    say("");
    setBusy(true);
    try {
      show(await api.saveRules(screen.session.event, patch));
      say(`Saved at ${formatTime(new Date())}: new posts are checked against these lists.`);
      screen.say("The event's rules are saved.");
    } catch (error) {
      say(`Not saved: ${describeError(error, "Saving the rules")}`, true);
    } finally {
      setBusy(false);
    }
  });
  for (const field of fields) field.addEventListener("input", () => setText(saved, ""));
  button.addEventListener("click", () => toggle());

  function setAllowed(ok) {
    allowed = ok;
    button.disabled = !ok;
    save.disabled = !ok || busy;
    if (!ok && !panel.hidden) toggle(false);
  }

  setAllowed(false);
  return { setAllowed };
}
