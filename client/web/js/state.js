// What a screen holds of a board: comments by id, threads, counts, the session. Events are
// applied as "set this state" (docs/protocol.md, "Applying events"): a comment replaces the
// stored one whole, counts are values to set, never deltas, so applying an event twice (or
// after a page that already had it) leaves the same result.

export const PUBLIC = "published";

/** Shown at all: published, or holding the place of published replies beneath it. */
export function isShown(comment) {
  return Boolean(comment) && (comment.status === PUBLIC || comment.reply_count > 0);
}

export function isPublic(comment) {
  return Boolean(comment) && comment.status === PUBLIC;
}

function insertSorted(list, id) {
  if (list.includes(id)) return;
  let index = list.length;
  while (index > 0 && list[index - 1] > id) index -= 1;
  list.splice(index, 0, id);
}

export class CommentStore {
  constructor() {
    this.comments = new Map();
    this.children = new Map(); // parent id -> reply ids in creation (id) order
    this.total = 0;
    this.session = null;
  }

  get(id) {
    return this.comments.get(Number(id)) || null;
  }

  has(id) {
    return this.comments.has(Number(id));
  }

  childrenOf(id) {
    return this.children.get(Number(id)) || [];
  }

  /** Store a comment whole (replacing what was there); returns the previous state. */
  upsert(comment) {
    const previous = this.comments.get(comment.id) || null;
    this.comments.set(comment.id, comment);
    if (comment.parent_id !== null && comment.parent_id !== undefined) {
      if (!this.children.has(comment.parent_id)) this.children.set(comment.parent_id, []);
      insertSorted(this.children.get(comment.parent_id), comment.id);
    }
    return previous;
  }

  setReplyCount(id, replyCount) {
    const comment = this.comments.get(id);
    if (!comment || comment.reply_count === replyCount) return false;
    this.comments.set(id, { ...comment, reply_count: replyCount });
    return true;
  }

  setHelpful(id, helpfulCount) {
    const comment = this.comments.get(id);
    if (!comment || comment.helpful_count === helpfulCount) return false;
    this.comments.set(id, { ...comment, helpful_count: helpfulCount });
    return true;
  }

  /** Take the threads of a page (GET …/comments) or a reply page. */
  loadPage(page) {
    for (const thread of page.threads || []) {
      this.upsert(thread.comment);
      for (const reply of thread.replies || []) this.upsert(reply);
    }
    if (typeof page.total === "number") this.total = page.total;
  }

  /** Every stored comment in creation order (oldest first). */
  inOrder() {
    return [...this.comments.values()].sort(
      (a, b) => Date.parse(a.created_at) - Date.parse(b.created_at) || a.id - b.id,
    );
  }

  /**
   * Apply one event. `hold(comment)` says whether to keep a comment this store does not have
   * yet (a board that shows one page keeps only what belongs on it). Returns what changed:
   * {comment, previous, isNew, parents: [ids], counts: [ids], helpful: [ids], session: bool}.
   * `parents` are the ancestors this store did not hold that the event brought (a restored or
   * approved reply beneath hidden comments that pages leave out), outermost first.
   */
  apply(event, hold = () => true) {
    const change = { event, comment: null, previous: null, isNew: false, parents: [], counts: [], helpful: [], session: false };
    if (typeof event.total === "number") this.total = event.total;
    if (event.session) {
      this.session = event.session;
      change.session = true;
    }
    for (const parent of event.parents || []) {
      if (!parent || this.has(parent.id) || !hold(parent)) continue;
      this.upsert(parent);
      change.parents.push(parent.id);
    }
    const comment = event.comment;
    if (comment && (this.has(comment.id) || hold(comment))) {
      change.previous = this.upsert(comment);
      change.comment = comment;
      change.isNew = change.previous === null;
    }
    for (const { id, reply_count: replyCount } of event.reply_counts || []) {
      if (this.setReplyCount(id, replyCount)) change.counts.push(id);
      else if (this.has(id)) change.counts.push(id);
    }
    for (const { id, helpful_count: helpfulCount } of event.helpful || []) {
      if (this.setHelpful(id, helpfulCount)) change.helpful.push(id);
    }
    return change;
  }
}

/**
 * When the session takes posts, by the client's clock corrected to the server's: open, and
 * inside its window. `skew` is serverTime - clientTime in ms. Also says when that next changes.
 */
export function acceptance(session, skew = 0) {
  if (!session) return { accepting: false, next: null };
  const now = Date.now() + skew;
  const opens = session.opens_at ? Date.parse(session.opens_at) : null;
  const closes = session.closes_at ? Date.parse(session.closes_at) : null;
  const inWindow = (opens === null || opens <= now) && (closes === null || closes > now);
  const edges = [opens, closes].filter((t) => t !== null && t > now);
  const next = edges.length ? Math.min(...edges) - skew : null; // in client time
  return { accepting: session.state === "open" && inWindow, next, beforeWindow: opens !== null && opens > now };
}

/** Keeps a screen's idea of "accepting" right as the window's edges pass (timers). */
export class WindowWatch {
  constructor(onChange) {
    this.onChange = onChange;
    this.timer = null;
    this.skew = 0;
    this.session = null;
    this.accepting = null;
  }

  setSkew(serverTime) {
    const server = Date.parse(serverTime);
    if (!Number.isNaN(server)) this.skew = server - Date.now();
  }

  update(session) {
    this.session = session;
    this.check();
  }

  check() {
    clearTimeout(this.timer);
    const { accepting, next } = acceptance(this.session, this.skew);
    if (next !== null) {
      const delay = Math.min(Math.max(next - Date.now() + 50, 0), 2 ** 31 - 1);
      this.timer = setTimeout(() => this.check(), delay);
    }
    const changed = accepting !== this.accepting;
    this.accepting = accepting;
    this.onChange(accepting, changed);
  }
}
