// The demo page: wires the protocol client, the microphone and the player to the DOM.
// Everything the tests look at is exposed as `window.relayDemo` (stats are plain numbers).

import { Microphone, MicError, micUnavailableReason, Player, RATE } from "./audio.js";
import { RelayClient, relayUrl } from "./client.js";

const $ = (id) => document.getElementById(id);
const root = $("relay-demo");
const config = {
  wsPath: root.dataset.wsPath || "/realtime",
  loginUrl: root.dataset.loginUrl || "/accounts/login/?next=/",
  authenticated: root.dataset.authenticated === "true",
};

const stats = {
  framesSent: 0,
  samplesSent: 0,
  samplesReceived: 0,
  playedSamples: 0,
  droppedSamples: 0,
  bargeIns: 0,
  interrupts: 0,
  playbackReports: [], // [{item_id, played_ms}] as sent to the relay
  lastLatencyMs: null,
  lastUsage: null,
  totalTokens: 0,
  captureRate: null,
  maxLevel: 0, // highest mic meter reading (0..1)
  connects: 0,
  statesSeen: [], // status kinds shown so far, in order of first appearance
  closes: [], // [{code, reason, final}]
};

const ui = {
  status: $("status"),
  statusDot: $("status-dot"),
  statusText: $("status-text"),
  notice: $("notice"),
  micNotice: $("mic-notice"),
  provider: $("provider"),
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
};

const player = new Player((s) => {
  stats.playedSamples = s.total;
  renderStatus();
});

const mic = new Microphone(
  (frame) => {
    if (client.sendAudio(frame)) {
      stats.framesSent += 1;
      stats.samplesSent += frame.byteLength / 2;
    }
  },
  (level) => renderLevel(level),
);

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
  if (mic.active && !mic.muted) {
    return ["listening", state.userSpeaking ? "Listening — hearing you" : "Listening"];
  }
  if (mic.active && mic.muted) return ["connected", "Connected — microphone muted"];
  return ["connected", "Connected"];
}

let lastStatus = "";
function renderStatus() {
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
  ui.empty.hidden = true;
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
  const follow = nearBottom();
  ui.log.append(li);
  if (follow) scrollToEnd();
  if (id) state.bubbles.set(id, li);
  return li;
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

function onTranscription(msg) {
  const text = (msg.text || "").trim() || "(nothing recognised)";
  let li = state.bubbles.get(msg.id);
  if (!li) li = state.pendingUser.shift();
  if (li) {
    li.dataset.id = msg.id;
    state.bubbles.set(msg.id, li);
    setBubbleText(li, text);
  } else {
    addBubble("user", text, { id: msg.id });
  }
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
  stats.interrupts += 1;
  if (report && active) {
    client.send({ type: "interrupt", ...report });
    stats.playbackReports.push(report);
  } else {
    client.send({ type: "interrupt" });
  }
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
    ui.latency.textContent = `${stats.lastLatencyMs} ms`;
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
      addBubble("system", msg.greeting || "Connected.");
      break;
    case "session_info":
      ui.provider.textContent = msg.provider || "unknown";
      ui.session.textContent = msg.session_id || "–";
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
    case "transcription":
      onTranscription(msg);
      break;
    case "error":
      onError(msg);
      break;
    default:
      break; // unknown messages are ignored (forward compatible)
  }
});

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
  if (!msg.fatal) {
    showNotice(escapeHtml(msg.message || msg.code), "warning");
  }
}

client.addEventListener("audio", (ev) => onAudio(ev.detail));

client.addEventListener("state", (ev) => {
  state.conn = ev.detail.state;
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
  player.clear();
  for (const li of state.pendingUser.splice(0)) setBubbleText(li, "(not transcribed)");
  if (d.authRequired) return renderStatus(); // the notice with the login link stays
  if (d.final) {
    showNotice(`${escapeHtml(d.reason)} Press “Reconnect” to start a new session.`, "error");
  } else {
    const secs = Math.round(d.reconnectInMs / 100) / 10;
    showNotice(`${escapeHtml(d.reason)} Reconnecting in ${secs} s…`, "warning");
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
  client.send({ type: "user_message", text });
  state.awaitingFirstAudio = null;
  ui.input.value = "";
});
// Escape stops the assistant from anywhere on the page.
document.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape" && !ui.stopButton.disabled) interrupt();
});

const micProblem = micUnavailableReason();
if (micProblem) {
  ui.micButton.disabled = true;
  ui.muteButton.disabled = true;
  showMicNotice(micProblem);
}

window.relayDemo = { stats, state, client, mic, player, config, interrupt };
renderStatus();
client.connect();
