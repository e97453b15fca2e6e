// What the presenter feed and the moderator console share: a flat, live list of every comment
// of the session (not paged like the board), the role gate with its demo sign-in, and the
// header's session, status, watching and total.

import { ApiError, createApi, describeError } from "./api.js";
import { Announcer, byTestId, fill, h, setText, show } from "./dom.js";
import { Live } from "./live.js";
import { CommentStore, isPublic } from "./state.js";
import { answeredText, authorName } from "./format.js";
import { Tokens, roleAllows } from "./token.js";
import { fatal, pageParams, showStatus, showTotal, showWatching, signInForm, whoami } from "./ui.js";

/**
 * Start a staff screen. options: role ("presenter" or "moderator"), what (a noun for the
 * gate's words), onChange(changes) after events or loads, onSession(session), onGate(allowed),
 * and the feed's onAuth(message) and onQueue(message) (live.js).
 * Returns the screen's context: {slug, api, tokens, store, allowed(), showError, hideError, ...}.
 */
export function staffScreen({ role, what, onChange, onSession, onGate, onAuth, onQueue }) {
  const params = pageParams();
  const slug = params.session;
  const tokens = new Tokens();
  const api = createApi({ tokens });
  const store = new CommentStore();
  const baseTitle = document.title;
  const ui = {
    title: byTestId("session-title"),
    status: byTestId("status"),
    watching: byTestId("watching"),
    total: byTestId("total"),
    error: byTestId("error"),
    account: document.getElementById("account"),
    announcer: new Announcer(byTestId("announcer")),
  };
  const screen = {
    slug,
    api,
    tokens,
    store,
    ui,
    session: null,
    live: null,
    allowed: () => roleAllows(tokens.claims, role, screen.session?.event),
    showError(text) {
      setText(ui.error, text);
      show(ui.error, true);
    },
    hideError() {
      show(ui.error, false);
      setText(ui.error, "");
    },
    say: (text) => ui.announcer.say(text),
    failed(error, action) {
      screen.showError(describeError(error, action));
      if (error instanceof ApiError && error.status === 401 && !tokens.canRefresh) {
        tokens.clear();
      }
    },
  };

  function renderGate() {
    const allowed = screen.allowed();
    if (allowed) {
      fill(ui.account, whoami(tokens, { onSignOut: renderGate }));
    } else {
      const claims = tokens.claims;
      const note = claims
        ? `You are signed in as ${claims.name || "someone"} (${claims.role}${claims.event && claims.event !== "*" ? `, event ${claims.event}` : ""}): ${what} needs the ${role} role.`
        : `${what[0].toUpperCase()}${what.slice(1)} needs a ${role} sign-in. Until then this screen only shows the comments.`;
      fill(
        ui.account,
        h("p", { class: "gate-note", text: note }),
        claims ? whoami(tokens, { onSignOut: renderGate }) : null,
        signInForm({
          tokens,
          role,
          heading: `Sign in as ${role} (demo)`,
          intro: `This demo server signs anyone in. Choose the ${role} role to use this screen.`,
        }),
      );
    }
    onGate?.(allowed);
  }

  function setSession(session) {
    screen.session = session;
    store.session = session;
    setText(ui.title, session.title);
    document.title = `${session.title} · ${baseTitle}`;
    onSession?.(session);
  }

  async function start() {
    if (!slug) {
      fatal("The address names no session: add ?session=<slug>.");
      showStatus(ui.status, "stopped", "no session");
      setText(ui.title, "No session");
      return;
    }
    tokens.onChange(() => renderGate());
    await tokens.init();
    let page;
    try {
      page = await api.page(slug);
      setSession(await api.session(slug));
    } catch (error) {
      fatal(error instanceof ApiError && error.code === "unknown_session" ? `There is no session "${slug}".` : describeError(error, "Loading"));
      showStatus(ui.status, "stopped", "could not load");
      setText(ui.title, "Session not available");
      return;
    }
    store.loadPage(page);
    screen.older = page.older;
    showTotal(ui.total, store.total);
    renderGate();
    onChange?.({ loaded: true, added: [], events: [] });
    screen.live = new Live({
      slug,
      since: page.head,
      tokens,
      onState: (state, detail) => showStatus(ui.status, state, detail),
      onWatching: (n) => showWatching(ui.watching, n),
      onAuth: (message) => onAuth?.(message),
      onQueue: (message) => onQueue?.(message),
      onEvents: (events) => {
        const added = [];
        const changes = [];
        for (const event of events) {
          const change = store.apply(event);
          changes.push(change);
          if (change.session) setSession(event.session);
          if (change.isNew) added.push(change.comment);
        }
        showTotal(ui.total, store.total);
        onChange?.({ loaded: false, added, events: changes });
      },
      onReload: async () => {
        const fresh = await api.page(slug);
        store.loadPage(fresh);
        onChange?.({ loaded: true, added: [], events: [] });
        screen.live.resume(fresh.head);
      },
    });
    screen.live.start();
  }

  /** The page of older threads (for a console that wants to look further back). */
  screen.loadOlder = async () => {
    if (!screen.older) return false;
    const page = await api.page(slug, { before: screen.older });
    for (const thread of page.threads) {
      if (!store.has(thread.comment.id)) store.upsert(thread.comment);
      for (const reply of thread.replies) if (!store.has(reply.id)) store.upsert(reply);
    }
    screen.older = page.older;
    onChange?.({ loaded: true, added: [], events: [] });
    return true;
  };

  screen.start = start;
  screen.setSession = setSession;
  screen.renderGate = renderGate;
  return screen;
}

/**
 * "↳ reply to Maya" above a reply. ``hidden`` names a parent that is not shown: a string, or
 * {removed, deleted} by the parent's status (deleted: by its author).
 */
export function replyContext(c, parent, hidden) {
  if (c.parent_id === null) return null;
  let name;
  if (parent && isPublic(parent)) name = authorName(parent.author);
  else if (typeof hidden === "string") name = hidden;
  else name = parent && parent.status === "deleted" ? hidden.deleted : hidden.removed;
  return h("p", { class: "context" }, "↳ reply to ", h("bdi", { dir: "auto", text: name }));
}

/** The question, highlighted and answered badges of a comment, or nothing. */
export function badges(c, questionLabel) {
  if (!(c.question || c.highlighted_at || c.answered_at)) return null;
  return h(
    "div",
    { class: "badges" },
    c.question ? h("span", { class: "badge badge-question", testid: "question", text: questionLabel }) : null,
    c.highlighted_at ? h("span", { class: "badge badge-highlighted", testid: "highlighted", text: "Highlighted" }) : null,
    c.answered_at ? h("span", { class: "badge badge-answered", testid: "answered", text: answeredText(c.answered_at) }) : null,
  );
}

/** What a reply shows of its parent ("↳ reply to Maya"): redraw when that changes. */
export function parentKey(store, c) {
  const parent = c.parent_id !== null ? store.get(c.parent_id) : null;
  return parent ? `${parent.status}|${authorName(parent.author)}` : "";
}
