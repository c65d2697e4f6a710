// The relay's client protocol (docs/protocol.md): one WebSocket, JSON text frames for control
// and PCM16 24 kHz mono binary frames for audio, both ways. Reconnects with backoff after a
// drop, except when the relay said that reconnecting cannot help (auth, admin, limits). A lost
// socket (no close frame) or a draining worker (1012) is resumed: the reconnect carries the
// session's latest `resume_token` (docs/protocol.md, "Resuming a session") and gets the same
// session, its conversation intact, on whichever worker answers.

/** Close codes after which the page must not reconnect by itself (see docs/protocol.md). */
export const NO_AUTO_RECONNECT = new Map([
  [1008, "The relay refused the connection (login required or origin not allowed)."],
  [4000, "An administrator ended the session."],
  [4003, "Too many sessions are open (per user or in total)."],
  [4004, "The session reached its maximum length."],
  [4005, "The session was closed after being idle."],
  [4007, "The daily budget is used up."],
  [4011, "The realtime service rejected the relay's credentials."],
  [4015, "This conversation continued in another window or tab."],
]);

/** Human-readable meaning of the other close codes. */
export const CLOSE_REASONS = new Map([
  [1000, "The connection was closed."],
  [1001, "The relay is going away."],
  [1006, "The connection dropped."],
  [1009, "A message was too large for the relay."],
  [1011, "The relay hit an internal error."],
  [1012, "The relay is restarting."],
  [4010, "The realtime service is unavailable."],
  [4012, "The realtime service closed the session."],
  [4013, "The realtime service stopped answering."],
  [4014, "The realtime session expired."],
]);

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 8000; // 0.5, 1, 2, 4, 8, 8 … s (±25 %): several tries in a resume window

/**
 * Whether a close leaves the session resumable: the relay keeps it (`RELAY_RESUME_SECONDS`)
 * when the socket was lost without a fatal error from the relay (1006: no close frame; 1001,
 * 1005) or when its worker drained (1012, `server_restarting`). A connect the relay refused
 * before the session was live (`opened` false: e.g. 4006, too many connects) ended nothing:
 * the token is kept for the next try. After any other fatal error the relay ended the
 * session: a reconnect starts a new one.
 */
export function resumable(code, error, opened = true) {
  if (code === 1000) return false;
  if (code === 1012 || !opened) return true;
  return !(error && error.fatal);
}

export function relayUrl(path = "/realtime") {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${path}`;
}

/**
 * Events (CustomEvent, details in `event.detail`):
 *  - "state": {state: "connecting"|"open"|"reconnecting"|"closed", ...}
 *  - "message": a parsed JSON message from the relay
 *  - "audio": an ArrayBuffer of PCM16 reply audio
 *  - "closed": {code, reason, error, reconnectInMs, final, resuming}
 */
export class RelayClient extends EventTarget {
  constructor(url = relayUrl()) {
    super();
    this.url = url;
    this.ws = null;
    this.state = "closed";
    this.attempt = 0;
    this.timer = null;
    this.lastError = null; // the last {"type":"error"} message of the current socket
    this.stopped = true;
    this.reconnectAt = 0;
    this.resumeToken = null; // the latest session_info's: a reconnect resumes with it
    this.resuming = false; // the socket being opened carries the token
    this.opened = false; // the current socket got `connected`
  }

  /** The URL of the next connect: with `?resume=TOKEN` while a lost session may be resumed. */
  connectUrl() {
    if (!this.resumeToken) return this.url;
    const url = new URL(this.url, location.href);
    url.searchParams.set("resume", this.resumeToken);
    return url.toString();
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.lastError = null;
    this.resuming = Boolean(this.resumeToken);
    this.opened = false;
    this._setState(this.attempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.connectUrl());
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => this._onMessage(ev);
    ws.onclose = (ev) => this._onClose(ws, ev);
    this.ws = ws;
  }

  /** Close on purpose: no reconnect. */
  disconnect() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) this.ws.close(1000, "client closed");
    else this._setState("closed");
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(message) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  sendAudio(buffer) {
    if (!this.isOpen || this.state !== "open") return false;
    this.ws.send(buffer);
    return true;
  }

  _setState(state, extra = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...extra } }));
  }

  _onMessage(ev) {
    if (typeof ev.data !== "string") {
      this.dispatchEvent(new CustomEvent("audio", { detail: ev.data }));
      return;
    }
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return; // not ours to fix; the relay only sends JSON text frames
    }
    if (!msg || typeof msg.type !== "string") return;
    if (msg.type === "control" && msg.action === "connected") {
      this.attempt = 0;
      this.opened = true;
      this._setState("open");
    }
    if (msg.type === "control" && msg.action === "session_info") {
      // A token is single-use: this one (null when the relay does not resume) replaces it.
      this.resumeToken = msg.resume_token || null;
    }
    if (msg.type === "error") this.lastError = msg;
    this.dispatchEvent(new CustomEvent("message", { detail: msg }));
  }

  _onClose(ws, ev) {
    if (ws !== this.ws) return;
    this.ws = null;
    const error = this.lastError;
    const authRequired = error && error.code === "auth_required";
    let reason =
      (error && error.fatal && error.message) ||
      ev.reason ||
      NO_AUTO_RECONNECT.get(ev.code) ||
      CLOSE_REASONS.get(ev.code) ||
      `The connection closed (code ${ev.code}).`;
    const final = this.stopped || authRequired || NO_AUTO_RECONNECT.has(ev.code);
    if (this.stopped) reason = "Disconnected.";
    // The relay ended the session (or will never take this token): the next connect is new.
    if (final || !resumable(ev.code, error, this.opened)) this.resumeToken = null;
    const resuming = !final && Boolean(this.resumeToken);
    let reconnectInMs = null;
    if (!final) {
      const base = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** this.attempt);
      reconnectInMs = Math.round(base * (0.75 + Math.random() * 0.5));
      this.attempt += 1;
      this.reconnectAt = Date.now() + reconnectInMs;
      this.timer = setTimeout(() => this.connect(), reconnectInMs);
    } else {
      this.stopped = true;
    }
    this._setState(final ? "closed" : "reconnecting", { waiting: !final });
    this.dispatchEvent(
      new CustomEvent("closed", {
        detail: { code: ev.code, reason, error, authRequired, reconnectInMs, final, resuming },
      }),
    );
  }
}
