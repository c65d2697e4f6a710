// Reply playback on the audio thread: a queue of PCM16 chunks, each tagged with the assistant
// item it belongs to. The context runs at 24 kHz (the browser resamples to the device), so one
// queued sample is one rendered sample and the per-item counters are exact protocol figures.
//
// Messages in:  {type:"audio", item, pcm: ArrayBuffer}  queue PCM16 for `item`
//               {type:"clear", id, item?}                stop now, drop everything queued;
//                                                        report what `item` played
// Messages out: {type:"state", playing, item, total, itemPlayed, queued}  (~25/s while playing,
//                                                                          and on start/stop)
//               {type:"cleared", id, item, itemPlayed, dropped, total}

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // [{item, data: Float32Array, offset}]
    this.queued = 0;
    this.played = new Map(); // item -> samples rendered
    this.total = 0;
    this.item = null; // item of the most recently rendered sample
    this.playing = false;
    this.sinceReport = 0;
    this.reportEvery = Math.round(sampleRate / 25);
    this.port.onmessage = (ev) => this._onMessage(ev.data);
  }

  _onMessage(msg) {
    if (msg.type === "audio") {
      const pcm = new Int16Array(msg.pcm);
      const data = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 0x8000;
      this.queue.push({ item: msg.item, data, offset: 0 });
      this.queued += data.length;
    } else if (msg.type === "clear") {
      const dropped = this.queued;
      let item = msg.item !== undefined ? msg.item : this.item;
      if (item === null && this.queue.length) item = this.queue[0].item;
      this.queue = [];
      this.queued = 0;
      this.port.postMessage({
        type: "cleared",
        id: msg.id,
        item,
        itemPlayed: item !== null ? this.played.get(item) || 0 : 0,
        dropped,
        total: this.total,
      });
      this._setPlaying(false);
    }
  }

  _setPlaying(playing) {
    if (playing !== this.playing) {
      this.playing = playing;
      this._report();
    }
  }

  _report() {
    this.sinceReport = 0;
    this.port.postMessage({
      type: "state",
      playing: this.playing,
      item: this.item,
      total: this.total,
      itemPlayed: this.item !== null ? this.played.get(this.item) || 0 : 0,
      queued: this.queued,
    });
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const left = out[0];
    const n = left.length;
    let written = 0;
    while (written < n && this.queue.length) {
      const chunk = this.queue[0];
      const take = Math.min(n - written, chunk.data.length - chunk.offset);
      left.set(chunk.data.subarray(chunk.offset, chunk.offset + take), written);
      written += take;
      chunk.offset += take;
      this.queued -= take;
      this.total += take;
      this.item = chunk.item;
      this.played.set(chunk.item, (this.played.get(chunk.item) || 0) + take);
      if (chunk.offset >= chunk.data.length) this.queue.shift();
    }
    if (written < n) left.fill(0, written);
    for (let c = 1; c < out.length; c++) out[c].set(left);
    this._setPlaying(written > 0 && (this.queue.length > 0 || written === n));
    this.sinceReport += n;
    if (this.playing && this.sinceReport >= this.reportEvery) this._report();
    return true;
  }
}

registerProcessor("relay-playback", PlaybackProcessor);
