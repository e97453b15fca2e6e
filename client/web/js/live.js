// The live feed of one session (docs/protocol.md, section 5): connects with `since`, sends
// `auth` after each `hello` when it has a token, unpacks `events` frames (any number of events
// each), skips events it has applied already, reconnects by itself with `since=<last seq>`
// (at once after 4008 or 1012, with growing delays otherwise), and reports its state:
// "connecting", "live", "reconnecting", or "stopped" (the session does not exist).

const FATAL = new Set([1003, 1007, 1009, 4404]);
const AT_ONCE = new Set([4008, 1012]);

export class Live {
  /**
   * options: slug, since (the page's head), tokens (token.js, optional), and callbacks:
   * onEvents(events) with the new events of one frame, in order; onState(state, detail);
   * onWatching(count); onNotice(message); onQueue(message) (moderators: the review queue
   * changed); onAuth(message); onAuthError(message);
   * onReload() when the page must be loaded again (since_ahead).
   */
  constructor(options) {
    this.options = options;
    this.slug = options.slug;
    this.lastSeq = options.since ?? null;
    this.tokens = options.tokens || null;
    this.ws = null;
    this.state = "idle";
    this.attempt = 0;
    this.timer = null;
    this.stopped = false;
    this.hello = null;
    if (this.tokens) this.tokens.onChange((token) => token && this.sendAuth());
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => {
      if (this.ws) this.ws.close(1000, "offline");
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.state === "reconnecting") this.reconnectNow();
    });
  }

  start() {
    this.stopped = false;
    this.setState("connecting");
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "done");
    this.ws = null;
  }

  url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const since = this.lastSeq === null ? "" : `?since=${this.lastSeq}`;
    return `${scheme}//${window.location.host}/v1/sessions/${encodeURIComponent(this.slug)}/live${since}`;
  }

  connect() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect(null);
      return;
    }
    this.ws = ws;
    ws.onmessage = (message) => {
      if (this.ws === ws) this.receive(message.data);
    };
    ws.onclose = (close) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.closed(close.code, close.reason);
    };
  }

  closed(code, reason) {
    if (this.stopped) return;
    if (FATAL.has(code)) {
      this.setState("stopped", code === 4404 ? "This session does not exist." : reason);
      return;
    }
    if (code === 4400) {
      if (/since_ahead|ahead/.test(reason || "")) {
        this.setState("reconnecting");
        this.options.onReload?.();
        return;
      }
      this.setState("stopped", reason);
      return;
    }
    this.scheduleReconnect(code);
  }

  scheduleReconnect(code) {
    this.setState("reconnecting");
    clearTimeout(this.timer);
    let delay;
    if (AT_ONCE.has(code)) {
      delay = code === 1012 ? 100 + Math.random() * 400 : 0;
    } else {
      const base = Math.min(250 * 2 ** this.attempt, 10000);
      delay = base / 2 + Math.random() * (base / 2);
      if (code === 1013) delay = Math.max(delay, 2000);
    }
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Try now (back online, tab visible again, or the caller knows the server is back). */
  reconnectNow() {
    if (this.stopped || this.state === "live" || this.state === "stopped") return;
    if (this.ws && this.ws.readyState === WebSocket.CONNECTING) return;
    this.attempt = 0;
    this.connect();
  }

  /** Load the page again from `since` (after a since_ahead refusal, with the new head). */
  resume(since) {
    this.lastSeq = since;
    this.attempt = 0;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close(1000, "resume");
    }
    this.connect();
  }

  sendAuth() {
    const token = this.tokens?.current;
    if (!token || !this.ws || this.ws.readyState !== WebSocket.OPEN || !this.hello) return;
    this.ws.send(JSON.stringify({ type: "auth", token }));
  }

  receive(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    switch (message.type) {
      case "hello":
        this.hello = message;
        this.attempt = 0;
        this.setState("live");
        this.sendAuth();
        break;
      case "events":
        this.events(message.events || []);
        break;
      case "watching":
        this.options.onWatching?.(message.count);
        break;
      case "auth.ok":
        this.options.onAuth?.(message);
        break;
      case "error":
        if (message.code === "token_expired" && this.tokens?.canRefresh) {
          this.tokens.refresh("expired");
        }
        this.options.onAuthError?.(message);
        break;
      case "notice":
        this.options.onNotice?.(message);
        break;
      case "queue":
        this.options.onQueue?.(message);
        break;
      default:
        break; // types this client does not know yet
    }
  }

  events(events) {
    const fresh = [];
    for (const event of events) {
      if (typeof event.seq !== "number") continue;
      if (this.lastSeq !== null && event.seq <= this.lastSeq) continue;
      if (this.lastSeq !== null && event.seq !== this.lastSeq + 1) {
        // A gap (the server promises none): take it again from what was applied.
        if (fresh.length) this.options.onEvents?.(fresh);
        this.ws?.close(1000, "gap");
        return;
      }
      this.lastSeq = event.seq;
      fresh.push(event);
    }
    if (fresh.length) this.options.onEvents?.(fresh);
  }

  setState(state, detail) {
    if (state !== "live") this.hello = state === "reconnecting" ? null : this.hello;
    const changed = state !== this.state;
    this.state = state;
    if (changed) this.options.onState?.(state, detail);
  }
}
