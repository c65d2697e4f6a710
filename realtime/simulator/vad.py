"""Energy-based voice activity detection over PCM16 mono (pure Python, no numpy).

The real service uses a neural VAD whose `threshold` (0.0-1.0) is an activation level. Here it
maps linearly onto a loudness gate: ``gate_dbfs = -80 + 80 * threshold`` (0.5 -> -40 dBFS,
0.0 -> -80 dBFS, 1.0 -> 0 dBFS, i.e. never). A 20 ms window is voiced when its RMS level (on
every 4th sample, to save CPU) is at or above the gate. The rate defaults to 24 kHz (the
Realtime API's); GPT-Live sessions may also use 16 kHz or 8 kHz (G.711, decoded first).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

RATE = 24000
WINDOW_MS = 20
STRIDE = 4


def gate_dbfs(threshold: float) -> float:
    return -80.0 + 80.0 * max(0.0, min(1.0, threshold))


def _mean_square_gate(threshold: float) -> float:
    amplitude = 32768.0 * 10 ** (gate_dbfs(threshold) / 20.0)
    return amplitude * amplitude


@dataclass
class VadEvent:
    kind: str  # "start" | "stop"
    ms: int  # audio_start_ms (with prefix padding) or audio_end_ms, on the session clock
    onset_ms: int = 0  # start events: where the first voiced window begins (no padding)


class EnergyVad:
    """Consumes audio in arbitrary chunk sizes; windows are aligned on the session clock."""

    def __init__(
        self,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
        rate: int = RATE,
    ) -> None:
        self._window_samples = rate * WINDOW_MS // 1000
        self._window_bytes = self._window_samples * 2
        self._strided = len(range(0, self._window_samples, STRIDE))
        self.clock_ms = 0  # total input audio processed in whole windows
        self.detecting = True
        self.in_speech = False
        self.voiced_windows = 0  # since the last reset_buffer(); tells "usable" audio apart
        self._rem = b""
        self._silence_ms = 0
        self.configure(threshold, prefix_padding_ms, silence_duration_ms)

    def configure(self, threshold: float, prefix_padding_ms: int, silence_duration_ms: int) -> None:
        self.threshold = threshold
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self._gate_sum = _mean_square_gate(threshold) * self._strided

    def reset_buffer(self) -> None:
        """The input buffer was committed or cleared: forget the current utterance."""
        self.in_speech = False
        self._silence_ms = 0
        self.voiced_windows = 0

    def feed(self, pcm: bytes) -> list[VadEvent]:
        data = self._rem + pcm if self._rem else pcm
        window_bytes, window_samples = self._window_bytes, self._window_samples
        whole = len(data) - len(data) % window_bytes
        self._rem = data[whole:]
        if not whole:
            return []
        samples = memoryview(data)[:whole].cast("h")
        gate = self._gate_sum
        mul = operator.mul
        events: list[VadEvent] = []
        for start in range(0, len(samples), window_samples):
            window = samples[start : start + window_samples : STRIDE]
            voiced = sum(map(mul, window, window)) >= gate
            window_start = self.clock_ms
            self.clock_ms += WINDOW_MS
            if voiced:
                self.voiced_windows += 1
            if not self.detecting:
                continue
            if voiced:
                self._silence_ms = 0
                if not self.in_speech:
                    self.in_speech = True
                    padded = max(0, window_start - self.prefix_padding_ms)
                    events.append(VadEvent("start", padded, window_start))
            elif self.in_speech:
                self._silence_ms += WINDOW_MS
                if self._silence_ms >= self.silence_duration_ms:
                    self.in_speech = False
                    self._silence_ms = 0
                    # Like the real service: the end includes the trailing silence duration.
                    events.append(VadEvent("stop", self.clock_ms))
        return events
