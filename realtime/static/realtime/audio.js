// Main-thread halves of the two AudioWorklets: Microphone (capture → PCM16 24 kHz frames)
// and Player (queued reply audio with per-item played-sample counters).

export const RATE = 24000;

export class MicError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

/** Why the microphone cannot be used here, or null when getUserMedia is available. */
export function micUnavailableReason() {
  if (!window.isSecureContext) {
    return (
      "The microphone only works on a secure page: open this demo over https:// " +
      "(or on http://localhost). Text chat still works."
    );
  }
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return "This browser cannot capture audio (no getUserMedia). Text chat still works.";
  }
  if (!window.AudioWorkletNode) {
    return "This browser has no AudioWorklet support. Text chat still works.";
  }
  return null;
}

export class Microphone {
  /** @param {(frame: ArrayBuffer) => void} onFrame @param {(level) => void} onLevel */
  constructor(onFrame, onLevel) {
    this.onFrame = onFrame;
    this.onLevel = onLevel;
    this.ctx = null;
    this.stream = null;
    this.node = null;
    this.muted = false;
  }

  get active() {
    return this.ctx !== null;
  }

  get deviceRate() {
    return this.ctx ? this.ctx.sampleRate : null;
  }

  async start() {
    const reason = micUnavailableReason();
    if (reason) throw new MicError("unsupported", reason);
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: true,
          noiseSuppression: true,
          autoGainControl: true,
        },
        video: false,
      });
    } catch (err) {
      if (err && (err.name === "NotAllowedError" || err.name === "SecurityError")) {
        throw new MicError(
          "denied",
          "Microphone access was denied. Allow the microphone for this site in the " +
            "browser's settings, then press “Start microphone” again. Text chat still works.",
        );
      }
      if (err && (err.name === "NotFoundError" || err.name === "OverconstrainedError")) {
        throw new MicError("missing", "No microphone was found. Text chat still works.");
      }
      throw new MicError("failed", `The microphone could not be opened (${err && err.name}).`);
    }
    // The context runs at the device's rate; the worklet resamples to 24 kHz itself.
    const ctx = new AudioContext({ latencyHint: "interactive" });
    try {
      await ctx.audioWorklet.addModule(new URL("./capture-worklet.js", import.meta.url));
      const source = ctx.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(ctx, "relay-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 0,
        channelCount: 1,
        channelCountMode: "explicit",
        processorOptions: { targetRate: RATE, frameMs: 20 },
      });
      node.port.onmessage = (ev) => {
        if (ev.data instanceof ArrayBuffer) this.onFrame(ev.data);
        else if (ev.data && ev.data.type === "level") this.onLevel(ev.data);
      };
      source.connect(node);
      await ctx.resume();
      this.ctx = ctx;
      this.stream = stream;
      this.node = node;
      this.setMuted(this.muted);
    } catch (err) {
      stream.getTracks().forEach((t) => t.stop());
      ctx.close();
      throw new MicError("failed", `Audio capture could not start: ${err && err.message}`);
    }
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.node) this.node.port.postMessage({ type: "mute", muted });
    if (this.stream) this.stream.getAudioTracks().forEach((t) => (t.enabled = !muted));
  }

  stop() {
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.ctx) this.ctx.close();
    this.ctx = null;
    this.stream = null;
    this.node = null;
  }
}

export class Player {
  /** @param {(state) => void} onState */
  constructor(onState) {
    this.onState = onState;
    this.ctx = null;
    this.node = null;
    this.ready = null;
    this.clearId = 0;
    this.pendingClears = new Map();
    this.state = { playing: false, item: null, total: 0, itemPlayed: 0, queued: 0 };
  }

  /** Create (or resume) the 24 kHz context; call from a user gesture for autoplay rules. */
  ensure() {
    if (!this.ready) {
      this.ready = this._create().catch((err) => {
        this.ready = null;
        throw err;
      });
    } else if (this.ctx && this.ctx.state === "suspended") {
      this.ctx.resume();
    }
    return this.ready;
  }

  async _create() {
    const ctx = new AudioContext({ sampleRate: RATE, latencyHint: "interactive" });
    await ctx.audioWorklet.addModule(new URL("./playback-worklet.js", import.meta.url));
    const node = new AudioWorkletNode(ctx, "relay-playback", {
      numberOfInputs: 0,
      numberOfOutputs: 1,
      outputChannelCount: [1],
    });
    node.port.onmessage = (ev) => this._onMessage(ev.data);
    node.connect(ctx.destination);
    this.ctx = ctx;
    this.node = node;
    if (ctx.state === "suspended") await ctx.resume().catch(() => {});
  }

  get running() {
    return this.ctx !== null && this.ctx.state === "running";
  }

  _onMessage(msg) {
    if (msg.type === "state") {
      this.state = msg;
      this.onState(msg);
    } else if (msg.type === "cleared") {
      this.state = { ...this.state, playing: false, queued: 0, total: msg.total };
      const resolve = this.pendingClears.get(msg.id);
      this.pendingClears.delete(msg.id);
      if (resolve) resolve(msg);
      this.onState(this.state);
    }
  }

  /** Queue PCM16 bytes of `item`; returns false when there is no running context. */
  enqueue(item, pcm) {
    if (!this.node) return false;
    this.node.port.postMessage({ type: "audio", item, pcm }, [pcm]);
    return true;
  }

  /** Stop at once and drop the queue; resolves with {item, itemPlayed, dropped}. */
  clear(item) {
    if (!this.node) return Promise.resolve({ item: item ?? null, itemPlayed: 0, dropped: 0 });
    const id = ++this.clearId;
    return new Promise((resolve) => {
      this.pendingClears.set(id, resolve);
      this.node.port.postMessage({ type: "clear", id, item });
    });
  }
}
