// The HTTP API (docs/protocol.md, section 4): JSON in and out, the token from a provider,
// errors as ApiError {status, code, message}. A post is retried with the same client_key
// while the network (or the server) is away, so a comment is stored once and never lost.

export class ApiError extends Error {
  /** details: what the error object carried besides code and message (retry_after, until, …). */
  constructor(status, code, message, retryAfter = 0, details = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.details = details;
  }

  /** Worth retrying unchanged: no answer at all, or the server says "later". */
  get transient() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

const TIMEOUT_MS = 20000;

/** Dispatched on window (by a screen whose feed came back) to retry waiting requests now. */
export const WAKE = "backchannel:wake";

export function wakeRetries() {
  window.dispatchEvent(new Event(WAKE));
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener("online", done);
      window.removeEventListener(WAKE, done);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    window.addEventListener("online", done); // back online: try at once
    window.addEventListener(WAKE, done); // the feed is live again: so is the server
    signal?.addEventListener("abort", done);
  });
}

/**
 * api = createApi({tokens}) where tokens (token.js) has `current` and `refresh(reason)`.
 * A request refused with 401 token_expired gets a fresh token once and is sent again.
 */
export function createApi({ base = "", tokens = null } = {}) {
  async function request(method, path, { body, query, retryAuth = true, timeout = TIMEOUT_MS, raw = false } = {}) {
    const url = new URL(base + path, window.location.href);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, value);
    }
    const headers = { Accept: raw ? "*/*" : "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = tokens?.current || null;
    if (token) headers.Authorization = `Bearer ${token}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeout);
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
        signal: controller.signal,
      });
    } catch {
      throw new ApiError(0, "network", "the server cannot be reached right now");
    } finally {
      clearTimeout(timer);
    }
    if (raw && response.ok) {
      try {
        return { blob: await response.blob(), filename: attachmentName(response.headers.get("Content-Disposition")) };
      } catch {
        throw new ApiError(0, "network", "the server cannot be reached right now");
      }
    }
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (response.ok) return data;
    const error = (data && data.error) || {};
    const { code, message, ...details } = error;
    const failure = new ApiError(
      response.status,
      code || `http_${response.status}`,
      message || response.statusText || `HTTP ${response.status}`,
      // A host site's page cannot read Retry-After across origins: the body says it too.
      Number(response.headers.get("Retry-After")) || Number(details.retry_after) || 0,
      details,
    );
    if (failure.code === "token_expired" && retryAuth && tokens && tokens.canRefresh) {
      const fresh = await tokens.refresh("expired");
      if (fresh && fresh !== token) {
        return request(method, path, { body, query, retryAuth: false, timeout, raw });
      }
    }
    throw failure;
  }

  /** Retry a request while it fails for want of a connection; `onWait(error, ms)` reports. */
  async function persist(send, { onWait, signal, maxDelay = 5000 } = {}) {
    let delay = 500;
    for (;;) {
      try {
        return await send();
      } catch (error) {
        if (!(error instanceof ApiError) || !error.transient || signal?.aborted) throw error;
        const wait = Math.max(error.retryAfter * 1000, delay);
        onWait?.(error, wait);
        await sleep(wait, signal);
        if (signal?.aborted) throw error;
        delay = Math.min(delay * 2, maxDelay);
      }
    }
  }

  const slugPath = (slug) => `/v1/sessions/${encodeURIComponent(slug)}`;
  const commentPath = (id) => `/v1/comments/${encodeURIComponent(id)}`;
  const eventPath = (event) => `/v1/events/${encodeURIComponent(event)}`;
  /** A moderator's action carries {"reason"} (for the audit log) only when one was given. */
  const because = (reason) => {
    const text = String(reason ?? "").trim();
    return text ? { body: { reason: text } } : {};
  };

  return {
    request,
    persist,
    session: (slug) => request("GET", slugPath(slug)),
    page: (slug, { before, after } = {}) =>
      request("GET", `${slugPath(slug)}/comments`, { query: { before, after } }),
    replies: (rootId, after) => request("GET", `${commentPath(rootId)}/replies`, { query: { after } }),
    locate: (id) => request("GET", commentPath(id)),
    /** Post a comment (payload: body, parent_id, client_key, question); retried while offline. */
    post: (slug, payload, options = {}) =>
      persist(() => request("POST", `${slugPath(slug)}/comments`, { body: payload }), options),
    mark: (id, mark, on) => request("POST", `${commentPath(id)}/marks`, { body: { mark, on } }),
    helpful: (id) => request("POST", `${commentPath(id)}/helpful`),
    /** Its author changes a comment's text (within the edit window: 409 edit_window_closed). */
    edit: (id, body) => request("PATCH", commentPath(id), { body: { body } }),
    /** Its author deletes a comment (EditResult; the comment comes back redacted). */
    delete: (id) => request("DELETE", commentPath(id)),
    remove: (id, reason) => request("POST", `${commentPath(id)}/remove`, because(reason)),
    restore: (id, reason) => request("POST", `${commentPath(id)}/restore`, because(reason)),
    open: (slug, reason) => request("POST", `${slugPath(slug)}/open`, because(reason)),
    close: (slug, reason) => request("POST", `${slugPath(slug)}/close`, because(reason)),
    /** The event's audit log (moderators): {event, entries}, oldest first. */
    audit: (event) => request("GET", `${eventPath(event)}/audit`),
    /** A file the server makes (CSV exports): {blob, filename}, fetched with the token. */
    download: (path, query) => request("GET", path, { query, raw: true, timeout: 60000 }),
    sessionExportPath: (slug) => `${slugPath(slug)}/export`,
    auditPath: (event) => `${eventPath(event)}/audit`,
    /** The caller's own posts of a session that others cannot see (held, rejected): {items}. */
    mine: (slug) => request("GET", `${slugPath(slug)}/mine`),
    /** The event's review queue (moderators): {event, items}, crises first, then oldest. */
    queue: (event) => request("GET", `${eventPath(event)}/queue`),
    approve: (id, reason) => request("POST", `${commentPath(id)}/approve`, because(reason)),
    reject: (id, reason) => request("POST", `${commentPath(id)}/reject`, because(reason)),
    /** Approve or reject many queued posts at once: one ReviewResult per id, in order. */
    reviewMany: (event, approve, ids, reason) =>
      request("POST", `${eventPath(event)}/queue/${approve ? "approve" : "reject"}`, {
        body: { ids, reason: String(reason ?? "").trim() },
      }),
    /** The event's own word lists and support message (moderators). */
    rules: (event) => request("GET", `${eventPath(event)}/rules`),
    saveRules: (event, patch) => request("PATCH", `${eventPath(event)}/rules`, { body: patch }),
    /** Change a session's details (moderators): {session, changed, seq}. */
    updateSession: (slug, patch) => request("PATCH", slugPath(slug), { body: patch }),
    /** Report a comment to the moderators: {comment_id, reported, reports, held}. */
    report: (id, reason, detail = "") =>
      request("POST", `${commentPath(id)}/report`, { body: detail ? { reason, detail } : { reason } }),
    /** The sanctions in force in an event (moderators): {event, items}, newest first. */
    sanctions: (event) => request("GET", `${eventPath(event)}/sanctions`),
    /** Flag, time out or ban an author (sanction: kind, minutes, reason, remove_comments). */
    sanction: (event, authorId, sanction) =>
      request("POST", `${eventPath(event)}/authors/${encodeURIComponent(authorId)}/sanctions`, { body: sanction }),
    /** Lift every sanction in force on an author: {lifted}. */
    lift: (event, authorId) =>
      request("DELETE", `${eventPath(event)}/authors/${encodeURIComponent(authorId)}/sanctions`),
  };
}

/** The file name of a `Content-Disposition: attachment; filename="…"` header, or null. */
function attachmentName(header) {
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(header || "");
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]).replace(/[\\/]/g, "_");
  } catch {
    return match[1].replace(/[\\/]/g, "_");
  }
}

/** Offer a blob as a download (an object URL on a temporary link), then let the URL go. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename || "download";
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** Words for an error, naming the problem (the server's message is English for people). */
export function describeError(error, action = "That") {
  if (!(error instanceof ApiError)) return `${action} failed: ${error?.message || error}`;
  switch (error.code) {
    case "network":
      return "No connection to the comment server.";
    case "session_closed":
      return "Comments are closed: your comment was not posted. Your text is kept here.";
    case "body_empty":
      return "Write something before posting.";
    case "body_too_long":
      return `Your comment is too long: ${error.message}.`;
    case "body_invalid":
      return "Your comment contains characters that cannot be stored.";
    case "parent_not_published":
      return "The comment you are replying to has been removed.";
    case "not_published":
      return "That comment has been removed.";
    case "edit_window_closed":
      return "Comments can only be edited for 5 minutes after posting: this one can no longer be changed.";
    case "not_author":
      return "Only its author can change or delete a comment.";
    case "not_allowed":
      return `That is not possible now (${error.message}).`;
    case "token_missing":
      return "Sign in to do that.";
    case "token_expired":
      return "Your sign-in has expired: sign in again.";
    case "role_required":
      return `Your sign-in does not allow this (${error.message}).`;
    case "wrong_event":
      return `Your sign-in is for another event (${error.message}).`;
    case "unknown_session":
      return "This session does not exist.";
    case "unknown_comment":
      return "That comment does not exist.";
    case "banned_word":
      return "Your comment contains a word this event does not allow: it was not posted. Your text is kept here.";
    case "empty_patch":
      return "Nothing to save.";
    case "request_too_large":
      return "That is too much text to send at once.";
    case "database_unavailable":
      return "The comment server is busy; trying again.";
    case "banned":
      return "Not posted: a moderator has removed your ability to post in this event. Your text is kept here.";
    case "timed_out":
      return "Not posted: a moderator has paused your posting for a while. Your text is kept here.";
    case "slow_mode":
      return `Slow mode: you can post again in ${error.retryAfter || error.details?.retry_after || "a few"} s. Your text is kept here.`;
    case "own_comment":
      return "You cannot report your own comment.";
    case "unknown_author":
      return "That author is not known in this event.";
    default:
      if (error.code.startsWith("token_")) return `Your sign-in is not valid: ${error.message}.`;
      return `${action} failed: ${error.message}.`;
  }
}
