// Microphone capture on the audio thread: mix to mono, low-pass and resample from the
// context's rate to 24 kHz, convert to PCM16 and post ~20 ms frames (transferred buffers).
// Also posts the input level (RMS and peak, 0..1) about 20 times a second.

const TARGET_RATE = 24000;

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.targetRate = opts.targetRate || TARGET_RATE;
    this.frameSamples = Math.round((this.targetRate * (opts.frameMs || 20)) / 1000);
    this.step = sampleRate / this.targetRate; // input samples per output sample
    this.pos = 0; // read position of the next output sample, relative to this block
    this.prev = 0; // last input sample of the previous block (position -1)
    this.frame = new Int16Array(this.frameSamples);
    this.fill = 0;
    this.muted = false;
    this.levelEvery = Math.round(sampleRate / 20);
    this.levelCount = 0;
    this.levelSum = 0;
    this.levelPeak = 0;
    this.mono = new Float32Array(128);
    this._setupLowpass();
    this.port.onmessage = (ev) => {
      if (ev.data && ev.data.type === "mute") this.muted = Boolean(ev.data.muted);
    };
  }

  // A biquad low-pass (RBJ cookbook, Q = 0.707) at 0.45 x the target rate, only when
  // downsampling: keeps energy above 12 kHz from folding back into the speech band.
  _setupLowpass() {
    this.lp = null;
    if (this.step <= 1.0001) return;
    const fc = 0.45 * this.targetRate;
    const w0 = (2 * Math.PI * fc) / sampleRate;
    const alpha = Math.sin(w0) / (2 * Math.SQRT1_2);
    const cos = Math.cos(w0);
    const a0 = 1 + alpha;
    this.lp = {
      b0: (1 - cos) / 2 / a0,
      b1: (1 - cos) / a0,
      b2: (1 - cos) / 2 / a0,
      a1: (-2 * cos) / a0,
      a2: (1 - alpha) / a0,
      x1: 0,
      x2: 0,
      y1: 0,
      y2: 0,
    };
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || !input[0]) return true;
    const n = input[0].length;
    if (this.mono.length !== n) this.mono = new Float32Array(n);
    const x = this.mono;
    const channels = input.length;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let c = 0; c < channels; c++) s += input[c][i];
      x[i] = s / channels;
    }
    this._measure(x, n);
    if (this.lp) {
      const f = this.lp;
      for (let i = 0; i < n; i++) {
        const y = f.b0 * x[i] + f.b1 * f.x1 + f.b2 * f.x2 - f.a1 * f.y1 - f.a2 * f.y2;
        f.x2 = f.x1;
        f.x1 = x[i];
        f.y2 = f.y1;
        f.y1 = y;
        x[i] = y;
      }
    }
    // Linear interpolation; position -1 is the previous block's last sample.
    let pos = this.pos;
    while (pos <= n - 1) {
      const i = Math.floor(pos);
      const frac = pos - i;
      const a = i < 0 ? this.prev : x[i];
      const b = frac > 0 ? x[i + 1] : a;
      this._push(this.muted ? 0 : a + (b - a) * frac);
      pos += this.step;
    }
    this.pos = pos - n;
    this.prev = x[n - 1];
    return true;
  }

  _push(v) {
    const s = v < -1 ? -1 : v > 1 ? 1 : v;
    this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.fill === this.frameSamples) {
      const buffer = this.frame.buffer;
      this.port.postMessage(buffer, [buffer]);
      this.frame = new Int16Array(this.frameSamples);
      this.fill = 0;
    }
  }

  _measure(x, n) {
    for (let i = 0; i < n; i++) {
      const v = x[i];
      this.levelSum += v * v;
      const a = v < 0 ? -v : v;
      if (a > this.levelPeak) this.levelPeak = a;
    }
    this.levelCount += n;
    if (this.levelCount >= this.levelEvery) {
      const rms = Math.sqrt(this.levelSum / this.levelCount);
      this.port.postMessage({
        type: "level",
        rms: this.muted ? 0 : rms,
        peak: this.muted ? 0 : this.levelPeak,
      });
      this.levelCount = 0;
      this.levelSum = 0;
      this.levelPeak = 0;
    }
  }
}

registerProcessor("relay-capture", CaptureProcessor);
