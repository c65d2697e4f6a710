"""Energy-based voice activity detection over PCM16 mono (pure Python, no numpy).

The real service uses a neural VAD whose `threshold` (0.0-1.0) is an activation level. Here it
maps linearly onto a loudness gate: ``gate_dbfs = -80 + 80 * threshold`` (0.5 -> -40 dBFS,
0.0 -> -80 dBFS, 1.0 -> 0 dBFS, i.e. never). A 20 ms window is voiced when its RMS level (on
every 4th sample, to save CPU) is at or above the gate. The rate defaults to 24 kHz (the
Realtime API's); GPT-Live sessions may also use 16 kHz or 8 kHz (G.711, decoded first).

Besides start/stop, the VAD keeps the per-window energies of the current input-buffer segment
(for the known-utterance fingerprint) and fires an "idle" event when the session clock passes
an idle deadline without speech (server VAD ``idle_timeout_ms``). Start events also report
the voiced onset (``onset_ms``, without the prefix padding).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

RATE = 24000
WINDOW_MS = 20
STRIDE = 4
# Envelopes are kept for at most this many windows (60 s); longer segments are never
# fingerprinted, and the cap bounds memory for sessions that never commit.
MAX_ENVELOPE_WINDOWS = 3000


def gate_dbfs(threshold: float) -> float:
    return -80.0 + 80.0 * max(0.0, min(1.0, threshold))


def _mean_square_gate(threshold: float) -> float:
    amplitude = 32768.0 * 10 ** (gate_dbfs(threshold) / 20.0)
    return amplitude * amplitude


def _window_shape(rate: int) -> tuple[int, int, int]:
    """(samples, bytes, strided samples measured) of one 20 ms window at ``rate``."""
    samples = rate * WINDOW_MS // 1000
    return samples, samples * 2, len(range(0, samples, STRIDE))


def window_energies(pcm: bytes, rate: int = RATE) -> list[float]:
    """Mean square of every 4th sample per whole 20 ms window, as the VAD measures it."""
    window_samples, window_bytes, strided = _window_shape(rate)
    samples = memoryview(pcm)[: len(pcm) - len(pcm) % window_bytes].cast("h")
    mul = operator.mul
    return [
        sum(map(mul, w, w)) / strided
        for w in (
            samples[i : i + window_samples : STRIDE] for i in range(0, len(samples), window_samples)
        )
    ]


@dataclass
class Segment:
    """The input-buffer audio since the last cut, as the VAD saw it."""

    voiced_windows: int = 0
    envelope: list[float] = field(default_factory=list)  # per-window mean square
    truncated: bool = False  # longer than MAX_ENVELOPE_WINDOWS


@dataclass
class VadEvent:
    kind: str  # "start" | "stop" | "idle"
    ms: int  # audio_start_ms (with prefix padding) or audio_end_ms, on the session clock
    onset_ms: int = 0  # start events: where the first voiced window begins (no padding)
    segment: Segment | None = None  # for "stop" and "idle": the audio up to this point


class EnergyVad:
    """Consumes audio in arbitrary chunk sizes; windows are aligned on the session clock."""

    def __init__(
        self,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
        rate: int = RATE,
    ) -> None:
        self.rate = rate
        self._window_samples, self._window_bytes, self._strided = _window_shape(rate)
        self.clock_ms = 0  # total input audio processed in whole windows
        self.detecting = True
        self.in_speech = False
        self.idle_deadline_ms: int | None = None  # fire "idle" at this clock unless speech
        self.segment = Segment()
        self._rem = b""
        self._silence_ms = 0
        self.configure(threshold, prefix_padding_ms, silence_duration_ms)

    def configure(self, threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        self.threshold = threshold
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self._gate_sum = _mean_square_gate(threshold) * self._strided

    def take_segment(self) -> Segment:
        """The input buffer was committed or cleared: hand over and forget the utterance."""
        segment = self.segment
        self.segment = Segment()
        self.in_speech = False
        self._silence_ms = 0
        return segment

    def feed(self, pcm: bytes) -> list[VadEvent]:
        data = self._rem + pcm if self._rem else pcm
        window_bytes, window_samples = self._window_bytes, self._window_samples
        whole = len(data) - len(data) % window_bytes
        self._rem = data[whole:]
        if not whole:
            return []
        samples = memoryview(data)[:whole].cast("h")
        gate = self._gate_sum
        strided = self._strided
        mul = operator.mul
        events: list[VadEvent] = []
        for start in range(0, len(samples), window_samples):
            window = samples[start : start + window_samples : STRIDE]
            energy = sum(map(mul, window, window))
            voiced = energy >= gate
            window_start = self.clock_ms
            self.clock_ms += WINDOW_MS
            segment = self.segment
            if len(segment.envelope) < MAX_ENVELOPE_WINDOWS:
                segment.envelope.append(energy / strided)
            else:
                segment.truncated = True
            if voiced:
                segment.voiced_windows += 1
            if not self.detecting:
                continue
            if voiced:
                self._silence_ms = 0
                if not self.in_speech:
                    self.in_speech = True
                    self.idle_deadline_ms = None
                    padded = max(0, window_start - self.prefix_padding_ms)
                    events.append(VadEvent("start", padded, onset_ms=window_start))
            elif self.in_speech:
                self._silence_ms += WINDOW_MS
                if self._silence_ms >= self.silence_duration_ms:
                    # Like the real service: the end includes the trailing silence duration.
                    events.append(VadEvent("stop", self.clock_ms, segment=self.take_segment()))
            elif self.idle_deadline_ms is not None and self.clock_ms >= self.idle_deadline_ms:
                self.idle_deadline_ms = None
                events.append(VadEvent("idle", self.clock_ms, segment=self.take_segment()))
        return events
