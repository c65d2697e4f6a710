// The demo page: wires the protocol client, the microphone and the player to the DOM.
// Everything the tests look at is exposed as `window.relayDemo` (stats are plain numbers).

import { Microphone, MicError, micUnavailableReason, Player, RATE } from "./audio.js";
import { RelayClient, relayUrl } from "./client.js";
import { PushToTalk } from "./ptt.js";

const $ = (id) => document.getElementById(id);
const root = $("relay-demo");
const config = {
  wsPath: root.dataset.wsPath || "/realtime",
  loginUrl: root.dataset.loginUrl || "/accounts/login/?next=/",
  authenticated: root.dataset.authenticated === "true",
};
const micProblem = micUnavailableReason();

const stats = {
  framesSent: 0,
  samplesSent: 0,
  samplesReceived: 0,
  playedSamples: 0,
  droppedSamples: 0,
  bargeIns: 0,
  interrupts: 0,
  commits: 0, // push-to-talk turns sent
  transcriptionDeltas: 0,
  toolCalls: [], // [{call_id, name, status}] in order of arrival
  playbackReports: [], // [{item_id, played_ms}] as sent to the relay
  lastLatencyMs: null, // measured here: speech_stopped/commit → first reply frame received
  answerLatencies: [], // response_done's latency_ms, per answer (as the relay measured it)
  lastUsage: null,
  totalTokens: 0,
  captureRate: null,
  maxLevel: 0, // highest mic meter reading (0..1)
  connects: 0,
  renewals: [], // [{reason, upstream}]: upstream sessions replaced on the same socket
  statesSeen: [], // status kinds shown so far, in order of first appearance
  closes: [], // [{code, reason, final}]
  connections: [], // every connection state in order: connecting, open, reconnecting, closed
  resumes: [], // [{session_id, resumed, message}]: each reconnect that carried a resume token
};

const ui = {
  status: $("status"),
  statusDot: $("status-dot"),
  statusText: $("status-text"),
  notice: $("notice"),
  micNotice: $("mic-notice"),
  provider: $("provider"),
  upstreams: $("upstreams"),
  session: $("session-id"),
  latency: $("latency"),
  usage: $("usage"),
  log: $("conversation"),
  empty: $("conversation-empty"),
  micButton: $("mic-button"),
  muteButton: $("mute-button"),
  stopButton: $("stop-button"),
  connectButton: $("connect-button"),
  meter: $("mic-level"),
  meterBar: $("mic-level-bar"),
  form: $("message-form"),
  input: $("message-input"),
  sendButton: $("send-button"),
  talkButton: $("talk-button"),
  mode: $("turn-mode"),
  turns: $("turn-detection"),
  hint: $("turn-hint"),
};

// Below this much audio per push-to-talk hold nothing is committed (the service's minimum).
const MIN_TURN_SAMPLES = RATE / 10;
// Who ends a user's turn (session_info.turn_detection).
const TURN_MODES = {
  none: "push-to-talk (you)",
  server_vad: "server VAD (the service)",
  semantic_vad: "semantic VAD (the service)",
};

const client = new RelayClient(relayUrl(config.wsPath));
const state = {
  conn: "connecting",
  closedReason: null,
  userSpeaking: false,
  responding: false,
  audioItem: null, // the item the next binary frame belongs to (from audio_start)
  cutItems: new Set(), // interrupted items: their late audio is dropped
  doneItems: new Set(), // items whose audio_done arrived
  awaitingFirstAudio: null, // performance.now() of speech_stopped, until the first reply frame
  pendingUser: [], // user bubbles waiting for their transcription
  bubbles: new Map(), // protocol id -> bubble element
  localCount: 0,
  pushToTalk: false, // session_info.turn_detection === "none": the page ends each user turn
  talkBubble: null, // the user bubble of the push-to-talk hold in progress
  turnSamples: 0, // audio samples sent during that hold
  tools: new Map(), // call_id -> tool line element
  sending: Promise.resolve(), // typed messages go out in order, each after its interrupt
};

const player = new Player((s) => {
  stats.playedSamples = s.total;
  renderStatus();
});

const mic = new Microphone(
  (frame) => {
    if (state.pushToTalk && !ptt.held) return; // push-to-talk: audio only while held
    if (client.sendAudio(frame)) {
      stats.framesSent += 1;
      stats.samplesSent += frame.byteLength / 2;
      state.turnSamples += frame.byteLength / 2;
    }
  },
  (level) => renderLevel(level),
);

const ptt = new PushToTalk(ui.talkButton, { onPress: onTalkPress, onRelease: onTalkRelease });

// ---------------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------------

function statusLabel() {
  switch (state.conn) {
    case "connecting":
      return ["connecting", "Connecting…"];
    case "reconnecting": {
      const secs = Math.max(0, Math.ceil((client.reconnectAt - Date.now()) / 1000));
      return ["connecting", client.ws ? "Reconnecting…" : `Connection lost — retrying in ${secs} s`];
    }
    case "closed":
      return ["closed", `Closed${state.closedReason ? `: ${state.closedReason}` : ""}`];
    default:
      break;
  }
  if (player.state.playing) return ["speaking", "Speaking"];
  if (state.pushToTalk) return pushToTalkLabel();
  if (mic.active && !mic.muted) {
    return ["listening", state.userSpeaking ? "Listening — hearing you" : "Listening"];
  }
  if (mic.active && mic.muted) return ["connected", "Connected — microphone muted"];
  return ["connected", "Connected"];
}

function pushToTalkLabel() {
  if (ptt.held) {
    if (!mic.active) return ["connecting", "Opening the microphone…"];
    const text = mic.muted ? "Microphone muted — release to send" : "Listening — release to send";
    return ["listening", text];
  }
  return ["connected", "Connected — hold to talk"];
}

let lastStatus = "";
function renderStatus() {
  // For tests and styles: "connecting" | "live" | "reconnecting" | "closed".
  root.dataset.connection = state.conn === "open" ? "live" : state.conn;
  const [kind, text] = statusLabel();
  const key = `${kind}|${text}`;
  if (key !== lastStatus) {
    lastStatus = key;
    ui.status.dataset.state = kind;
    if (!stats.statesSeen.includes(kind)) stats.statesSeen.push(kind);
    ui.statusText.textContent = text;
  }
  const open = state.conn === "open";
  ui.sendButton.disabled = !open;
  ui.talkButton.disabled = !open || Boolean(micProblem);
  ui.stopButton.disabled = !(open && (state.responding || player.state.playing));
  ui.connectButton.hidden = state.conn !== "closed" && state.conn !== "reconnecting";
  ui.connectButton.textContent = state.conn === "closed" ? "Reconnect" : "Reconnect now";
}
setInterval(() => state.conn === "reconnecting" && renderStatus(), 500);

function showNotice(html, kind = "info") {
  ui.notice.hidden = !html;
  ui.notice.dataset.kind = kind;
  ui.notice.innerHTML = html || "";
}

function showMicNotice(text) {
  ui.micNotice.hidden = !text;
  ui.micNotice.textContent = text || "";
}

function escapeHtml(text) {
  const div = document.createElement("div");
  div.textContent = text;
  return div.innerHTML;
}

let levelShown = 0;
function renderLevel(level) {
  // Perceptual scale: -60 dBFS .. 0 dBFS over the meter, fast attack, slower release.
  const db = level.rms > 0 ? 20 * Math.log10(level.rms) : -100;
  const v = Math.max(0, Math.min(1, (db + 60) / 60));
  levelShown = v > levelShown ? v : levelShown * 0.7 + v * 0.3;
  stats.maxLevel = Math.max(stats.maxLevel, levelShown);
  ui.meter.value = levelShown;
  ui.meterBar.style.transform = `scaleX(${levelShown.toFixed(3)})`;
}

// ---------------------------------------------------------------------------------------------
// Conversation
// ---------------------------------------------------------------------------------------------

function addBubble(role, text, { id = null, pending = false } = {}) {
  const li = document.createElement("li");
  li.className = `bubble ${role}`;
  if (pending) li.classList.add("pending");
  if (id) li.dataset.id = id;
  li.setAttribute("aria-busy", String(pending)); // announce a streamed bubble once it is done
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = { user: "You", assistant: "Assistant", system: "Relay" }[role];
  const body = document.createElement("p");
  body.className = "text";
  body.textContent = text;
  li.append(who, body);
  appendToLog(li);
  if (id) state.bubbles.set(id, li);
  return li;
}

function appendToLog(li) {
  ui.empty.hidden = true;
  const follow = nearBottom();
  ui.log.append(li);
  if (follow) scrollToEnd();
}

function setBubbleText(li, text, { append = false, pending = false } = {}) {
  const follow = nearBottom();
  const body = li.querySelector(".text");
  body.textContent = append ? body.textContent + text : text;
  setPending(li, pending);
  if (follow) scrollToEnd();
}

function setPending(li, pending) {
  li.classList.toggle("pending", pending);
  li.setAttribute("aria-busy", String(pending));
}

// Follow new text only when the reader is at the end (scrolling back stays put).
function nearBottom() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight < 48;
}

function scrollToEnd() {
  ui.log.scrollTop = ui.log.scrollHeight;
}

function assistantBubble(id) {
  return state.bubbles.get(id) || addBubble("assistant", "", { id, pending: true });
}

/** The bubble of user item `id`: its own, else the oldest one waiting for words, else new. */
function userBubble(id) {
  let li = state.bubbles.get(id);
  if (!li) {
    li = state.pendingUser.shift() || addBubble("user", "", { pending: true });
    li.dataset.id = id;
    state.bubbles.set(id, li);
  }
  return li;
}

// The words grow while they are transcribed; the first delta replaces the "…" placeholder.
function onTranscriptionDelta(msg) {
  stats.transcriptionDeltas += 1;
  const li = userBubble(msg.id);
  const first = li.dataset.live !== "true";
  li.dataset.live = "true";
  setBubbleText(li, msg.delta || "", { append: !first, pending: true });
}

function onTranscription(msg) {
  const text = (msg.text || "").trim() || "(nothing recognised)";
  const li = userBubble(msg.id);
  delete li.dataset.live;
  setBubbleText(li, text);
}

/** Remove a user bubble that will get no words (e.g. a push-to-talk hold that sent nothing). */
function dropUserBubble(li) {
  if (!li) return;
  const i = state.pendingUser.indexOf(li);
  if (i >= 0) state.pendingUser.splice(i, 1);
  li.remove();
}

function onInputTimeout() {
  const li = addBubble("system", "No words heard for a while — still there?");
  li.classList.add("nudge");
}

// ---------------------------------------------------------------------------------------------
// Tool calls: one status line per call, updated in place (started → done / error)
// ---------------------------------------------------------------------------------------------

const TOOL_STATUS = { started: "running…", done: "done", error: "failed" };
const TOOL_ERRORS = { cancelled: "cancelled", timeout: "timed out", refused: "refused" };

function compactJson(value, limit = 240) {
  let text;
  try {
    text = typeof value === "string" ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

function toolLine(msg) {
  let li = state.tools.get(msg.call_id);
  if (li) return li;
  li = document.createElement("li");
  li.className = "tool-call";
  li.dataset.callId = msg.call_id;
  li.innerHTML =
    '<span class="tool-icon" aria-hidden="true">⚙</span>' +
    '<span class="visually-hidden">Tool </span><code class="tool-name"></code> ' +
    '<span class="tool-status"></span><span class="tool-detail"></span>';
  li.querySelector(".tool-name").textContent = msg.name || "tool";
  state.tools.set(msg.call_id, li);
  appendToLog(li);
  return li;
}

function onToolCall(msg) {
  if (!msg.call_id) return;
  const li = toolLine(msg);
  const status = msg.status in TOOL_STATUS ? msg.status : "started";
  stats.toolCalls.push({ call_id: msg.call_id, name: msg.name, status });
  li.dataset.status = status;
  li.setAttribute("aria-busy", String(status === "started"));
  const error = msg.error ? TOOL_ERRORS[msg.error] || msg.error.replace(/_/g, " ") : "";
  li.querySelector(".tool-status").textContent =
    status === "error" ? `${TOOL_STATUS.error}${error ? `: ${error}` : ""}` : TOOL_STATUS[status];
  const parts = [];
  if (msg.arguments !== undefined) parts.push(compactJson(msg.arguments));
  if (msg.result !== undefined) parts.push(`→ ${compactJson(msg.result)}`);
  const detail = li.querySelector(".tool-detail");
  detail.textContent = parts.join(" ");
  detail.hidden = parts.length === 0;
  if (msg.result !== undefined) li.title = compactJson(msg.result, 2000);
}

// ---------------------------------------------------------------------------------------------
// Playback and barge-in
// ---------------------------------------------------------------------------------------------

/**
 * Stop playback at once and drop the rest of the current item; report how much of it was
 * actually played (the relay truncates the model's memory there). Returns the report.
 */
async function cutPlayback() {
  const item = state.audioItem;
  if (item) state.cutItems.add(item); // synchronously: frames arriving meanwhile are dropped
  const cleared = await player.clear(item);
  stats.playedSamples = cleared.total ?? stats.playedSamples;
  stats.droppedSamples += cleared.dropped || 0;
  renderStatus();
  if (!item) return null;
  const played_ms = Math.floor(((cleared.itemPlayed || 0) * 1000) / RATE);
  return { item_id: item, played_ms };
}

async function onSpeechStarted() {
  state.userSpeaking = true;
  const wasPlaying = player.state.playing || player.state.queued > 0;
  const item = state.audioItem;
  const unfinished = item && !state.cutItems.has(item) && (wasPlaying || !state.doneItems.has(item));
  state.pendingUser.push(addBubble("user", "…", { pending: true }));
  const report = await cutPlayback();
  if (report && unfinished) {
    stats.bargeIns += 1;
    client.send({ type: "playback", ...report });
    stats.playbackReports.push(report);
  }
}

async function interrupt() {
  const item = state.audioItem;
  const active = item && !state.cutItems.has(item);
  const report = await cutPlayback();
  sendInterrupt(active ? report : null);
}

function sendInterrupt(report) {
  stats.interrupts += 1;
  if (report) {
    client.send({ type: "interrupt", ...report });
    stats.playbackReports.push(report);
  } else {
    client.send({ type: "interrupt" });
  }
}

/** The current answer's audio is still to be heard: playing, queued, or still arriving. */
function assistantAudible() {
  const item = state.audioItem;
  if (!item || state.cutItems.has(item)) return false;
  return player.state.playing || player.state.queued > 0 || !state.doneItems.has(item);
}

// ---------------------------------------------------------------------------------------------
// Push-to-talk (turn_detection "none"): audio goes out only while held; release commits it
// ---------------------------------------------------------------------------------------------

function setTurnMode(detection) {
  state.pushToTalk = detection === "none";
  ptt.setEnabled(state.pushToTalk);
  ui.talkButton.hidden = !state.pushToTalk;
  ui.mode.dataset.mode = state.pushToTalk ? "push-to-talk" : "open-mic";
  ui.mode.textContent = state.pushToTalk
    ? "Push-to-talk: hold the button (or Space) while you speak, release to send."
    : "Open microphone: speak any time; the assistant answers when you pause.";
  ui.turns.textContent = TURN_MODES[detection] || detection || "–";
  ui.hint.textContent = state.pushToTalk
    ? "Holding to talk while the assistant speaks interrupts it"
    : "Speaking while the assistant talks interrupts it";
}

async function onTalkPress() {
  unlockAudio();
  state.turnSamples = 0;
  state.talkBubble = addBubble("user", "…", { pending: true });
  state.pendingUser.push(state.talkBubble);
  renderStatus();
  // Barge-in by hand: the service hears no speech start, so the page cuts the answer itself.
  if (assistantAudible()) await interrupt();
  else if (state.responding) sendInterrupt(null);
  if (!mic.active && !ui.micButton.disabled) await toggleMic();
  renderStatus();
}

function onTalkRelease() {
  const bubble = state.talkBubble;
  state.talkBubble = null;
  if (!client.isOpen) {
    dropUserBubble(bubble);
  } else if (state.turnSamples < MIN_TURN_SAMPLES) {
    dropUserBubble(bubble); // what was sent (if anything) joins the next turn
    if (mic.active) showMicNotice("Hold the button (or Space) while you speak, then let go.");
  } else {
    client.send({ type: "commit" });
    stats.commits += 1;
    state.awaitingFirstAudio = performance.now();
    showMicNotice("");
  }
  renderStatus();
}

// ---------------------------------------------------------------------------------------------
// Typed messages: a message typed while the assistant is heard stops it first (exact played_ms)
// ---------------------------------------------------------------------------------------------

function sendTyped(text) {
  state.sending = state.sending.then(async () => {
    if (assistantAudible()) await interrupt();
    client.send({ type: "user_message", text });
  });
  return state.sending;
}

function onAudio(buffer) {
  const item = state.audioItem ?? "";
  const samples = buffer.byteLength / 2;
  stats.samplesReceived += samples;
  if (state.cutItems.has(item)) {
    stats.droppedSamples += samples;
    return;
  }
  if (state.awaitingFirstAudio !== null) {
    stats.lastLatencyMs = Math.round(performance.now() - state.awaitingFirstAudio);
    state.awaitingFirstAudio = null;
  }
  if (!player.enqueue(item, buffer)) stats.droppedSamples += samples;
}

// ---------------------------------------------------------------------------------------------
// Relay messages
// ---------------------------------------------------------------------------------------------

function onControl(msg) {
  switch (msg.action) {
    case "connected":
      stats.connects += 1;
      state.closedReason = null;
      showNotice("");
      // A resume's greeting waits for session_info: is it the same conversation or a new one?
      if (!client.resuming) addBubble("system", msg.greeting || "Connected.");
      break;
    case "session_info":
      ui.provider.textContent = msg.provider || "unknown";
      ui.upstreams.textContent = "1";
      ui.session.textContent = msg.session_id || "–";
      root.dataset.sessionId = msg.session_id || "";
      setTurnMode(msg.turn_detection || "server_vad");
      if (client.resuming) onResumeAnswer(msg);
      break;
    case "input_timeout":
      onInputTimeout();
      break;
    case "speech_started":
      onSpeechStarted();
      break;
    case "speech_stopped":
      state.userSpeaking = false;
      state.awaitingFirstAudio = performance.now();
      break;
    case "response_started":
      state.responding = true;
      break;
    case "audio_start":
      state.audioItem = msg.item_id || msg.id;
      break;
    case "audio_done":
      state.doneItems.add(String(msg.id).replace(/-\d+$/, ""));
      break;
    case "text_done": {
      const li = state.bubbles.get(msg.id);
      if (li) setPending(li, false);
      break;
    }
    case "response_done":
      state.responding = false;
      onResponseDone(msg);
      break;
    case "upstream_renewed":
      onUpstreamRenewed(msg);
      break;
    case "truncated": {
      const li = state.bubbles.get(`${msg.item_id}-0`);
      if (li) {
        li.classList.add("cut");
        li.title = `Interrupted after ${msg.audio_end_ms} ms of audio`;
      }
      break;
    }
    default:
      break;
  }
  renderStatus();
}

// A reconnect that carried the resume token: the same session goes on (its transcript is still
// on screen, the model remembers it), or the relay could not resume it and this is a new one
// (resume_unavailable follows with the reason).
function onResumeAnswer(msg) {
  const resumed = msg.resumed === true;
  stats.resumes.push({ session_id: msg.session_id, resumed, message: null });
  root.dataset.resumed = String(resumed);
  if (resumed) {
    addBubble("system", "Reconnected — the conversation goes on.").classList.add("resumed");
    showNotice("Resumed: the same session goes on.", "info");
  } else {
    addBubble("system", "New session — the earlier conversation could not be resumed.");
    showNotice("New session — the earlier conversation could not be resumed.", "warning");
  }
}

// The relay replaced the voice service's session (its time limit, or it failed) and gave the new
// one the conversation so far: same socket, same session; nothing to do but say so.
function onUpstreamRenewed(msg) {
  stats.renewals.push({ reason: msg.reason, upstream: msg.upstream });
  const recovered = stats.renewals.filter((r) => r.reason !== "max_age").length;
  ui.upstreams.textContent =
    `${msg.upstream ?? stats.renewals.length + 1} ` +
    `(${stats.renewals.length - recovered} on the timer, ${recovered} after a failure)`;
  if (msg.reason !== "max_age") {
    addBubble(
      "system",
      "The voice service dropped the call; the relay continued it on a new session.",
    );
  }
}

// The last answer's latency as the relay measured it (response_done's latency_ms extension):
// from the end of the user's turn to the first reply audio and text; null where it does not apply.
function showLatency(latency) {
  if (!latency || (latency.first_audio == null && latency.first_text == null)) return;
  stats.answerLatencies.push(latency);
  const el = ui.latency;
  for (const [key, value] of Object.entries(latency)) {
    el.dataset[key.replace(/_(\w)/g, (_, c) => c.toUpperCase())] = value ?? "";
  }
  const parts = [];
  if (latency.first_audio != null) parts.push(`${latency.first_audio} ms to first audio`);
  if (latency.first_text != null) parts.push(`${latency.first_text} ms to first text`);
  if (latency.relay != null) parts.push(`relay ${latency.relay} ms`);
  el.textContent = parts.join(" · ");
}

function onResponseDone(msg) {
  for (const li of state.bubbles.values()) {
    if (li.classList.contains("assistant")) setPending(li, false);
  }
  if (msg.usage) {
    const u = msg.usage;
    stats.lastUsage = u;
    stats.totalTokens += u.total_tokens || 0;
    ui.usage.textContent =
      `${u.input_tokens ?? 0} in / ${u.output_tokens ?? 0} out ` +
      `(${u.total_tokens ?? 0} this turn, ${stats.totalTokens} this page)`;
  }
  showLatency(msg.latency_ms);
  if (msg.status && msg.status !== "completed") {
    const last = [...state.bubbles.values()].filter((li) => li.classList.contains("assistant"));
    const li = last[last.length - 1];
    if (li) li.classList.add("cut");
  }
}

client.addEventListener("message", (ev) => {
  const msg = ev.detail;
  switch (msg.type) {
    case "control":
      onControl(msg);
      break;
    case "text_delta": {
      const li = assistantBubble(msg.id);
      setBubbleText(li, msg.delta, { append: true, pending: true });
      break;
    }
    case "transcription_delta":
      onTranscriptionDelta(msg);
      break;
    case "transcription":
      onTranscription(msg);
      break;
    case "tool_call":
      onToolCall(msg);
      break;
    case "error":
      onError(msg);
      break;
    default:
      break; // unknown messages are ignored (forward compatible)
  }
});

// A push-to-talk turn that was refused: its bubble will get no words.
const COMMIT_ERRORS = new Set([
  "commit_empty",
  "commit_unavailable",
  "input_audio_buffer_commit_empty",
]);

function onError(msg) {
  if (msg.code === "auth_required") {
    showNotice(
      `${escapeHtml(msg.message || "Please log in to use the voice relay.")} ` +
        `<a class="button-link" href="${escapeHtml(config.loginUrl)}">Log in</a>`,
      "error",
    );
    return;
  }
  if (msg.code === "transcription_failed") {
    const li = state.pendingUser.shift();
    if (li) setBubbleText(li, "(transcription failed)");
  }
  if (COMMIT_ERRORS.has(msg.code)) dropUserBubble(state.pendingUser[state.pendingUser.length - 1]);
  if (msg.code === "resume_unavailable") {
    const last = stats.resumes[stats.resumes.length - 1];
    if (last) last.message = msg.message || null;
    const why = msg.message ? `: ${msg.message}` : ".";
    showNotice(
      escapeHtml(`New session — the earlier conversation could not be resumed${why}`),
      "warning",
    );
    return;
  }
  if (!msg.fatal) {
    showNotice(escapeHtml(msg.message || msg.code), "warning");
  }
}

client.addEventListener("audio", (ev) => onAudio(ev.detail));

client.addEventListener("state", (ev) => {
  state.conn = ev.detail.state;
  stats.connections.push(state.conn);
  if (state.conn === "connecting" || state.conn === "reconnecting") {
    state.userSpeaking = false;
    state.responding = false;
  }
  renderStatus();
});

client.addEventListener("closed", (ev) => {
  const d = ev.detail;
  stats.closes.push({ code: d.code, reason: d.reason, final: d.final });
  state.closedReason = d.reason;
  state.audioItem = null;
  state.responding = false;
  state.userSpeaking = false;
  ptt.release(ptt.source);
  player.clear();
  for (const li of state.pendingUser.splice(0)) setBubbleText(li, "(not transcribed)");
  if (d.authRequired) return renderStatus(); // the notice with the login link stays
  if (d.final) {
    showNotice(`${escapeHtml(d.reason)} Press “Reconnect” to start a new session.`, "error");
  } else {
    const secs = Math.round(d.reconnectInMs / 100) / 10;
    const what = d.resuming ? " to resume this conversation" : "";
    showNotice(`${escapeHtml(d.reason)} Reconnecting${what} in ${secs} s…`, "warning");
  }
  renderStatus();
});

// ---------------------------------------------------------------------------------------------
// Controls
// ---------------------------------------------------------------------------------------------

// Browsers only start audio output after a user gesture: create the player on the first one.
function unlockAudio() {
  // AudioWorklet exists only in secure contexts; the mic notice already explains that case.
  if (!window.isSecureContext || !window.AudioWorkletNode) return;
  player.ensure().catch((err) => showMicNotice(`Reply audio cannot play: ${err}`));
}
for (const type of ["pointerdown", "keydown"]) {
  document.addEventListener(type, unlockAudio, { capture: true });
}

async function toggleMic() {
  unlockAudio();
  if (mic.active) {
    mic.stop();
    ui.micButton.textContent = "Start microphone";
    ui.micButton.setAttribute("aria-pressed", "false");
    ui.muteButton.disabled = true;
    renderLevel({ rms: 0 });
    renderStatus();
    return;
  }
  ui.micButton.disabled = true;
  try {
    await mic.start();
    stats.captureRate = mic.deviceRate;
    ui.micButton.textContent = "Stop microphone";
    ui.micButton.setAttribute("aria-pressed", "true");
    ui.muteButton.disabled = false;
    showMicNotice("");
  } catch (err) {
    const text = err instanceof MicError ? err.message : String(err);
    showMicNotice(text);
  } finally {
    ui.micButton.disabled = false;
    renderStatus();
  }
}

function toggleMute() {
  mic.setMuted(!mic.muted);
  ui.muteButton.setAttribute("aria-pressed", String(mic.muted));
  ui.muteButton.textContent = mic.muted ? "Unmute" : "Mute";
  renderStatus();
}

ui.micButton.addEventListener("click", toggleMic);
ui.muteButton.addEventListener("click", toggleMute);
ui.stopButton.addEventListener("click", () => interrupt());
ui.connectButton.addEventListener("click", () => {
  client.attempt = 0;
  client.connect();
});
ui.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = ui.input.value.trim();
  if (!text || !client.isOpen) return;
  unlockAudio();
  state.localCount += 1;
  addBubble("user", text, { id: `local-${state.localCount}` });
  sendTyped(text);
  state.awaitingFirstAudio = null;
  ui.input.value = "";
});
// The tools panel's "Try:" phrases fill the message box (sending stays the user's choice).
for (const button of document.querySelectorAll("#tools button.try")) {
  button.addEventListener("click", () => {
    ui.input.value = button.dataset.text;
    ui.input.focus();
  });
}
// Escape stops the assistant from anywhere on the page.
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && !ui.stopButton.disabled) interrupt();
});

if (micProblem) {
  ui.micButton.disabled = true;
  ui.muteButton.disabled = true;
  showMicNotice(micProblem);
}

// Leaving the page ends the session at once (a clean 1000 close); a lost connection does not:
// the relay keeps the session for a resume (docs/protocol.md, "Resuming a session").
window.addEventListener("pagehide", () => client.disconnect());

window.relayDemo = { stats, state, client, mic, player, config, interrupt, ptt };
renderStatus();
client.connect();
