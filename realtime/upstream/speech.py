"""The user's speech, heard by the relay itself: for upstreams that report no speech events.

GPT-Live sends nothing when the user starts or stops speaking, yet a client must stop playing
the assistant's audio the moment it is interrupted. This detector measures the loudness of
the client audio the relay forwards anyway (20 ms windows, every 4th sample, like the
simulator's VAD) and reports speech after ``START_MS`` of sound above the gate and its end
after ``silence_ms`` below it. The gate follows ``RELAY_VAD_THRESHOLD``: ``-80 + 80 ×
threshold`` dBFS (0.5 → -40 dBFS).
"""

from __future__ import annotations

import operator
import sys
from array import array

WINDOW_BYTES = 960  # 20 ms of PCM16 24 kHz mono
STRIDE = 4
START_MS = 60  # three loud windows in a row: a click or a breath is not speech


class SpeechDetector:
    def __init__(self, *, threshold: float, silence_ms: int) -> None:
        amplitude = 32768.0 * 10 ** ((-80 + 80 * threshold) / 20)
        samples = WINDOW_BYTES // 2
        self._gate = amplitude * amplitude * len(range(0, samples, STRIDE))
        self._silence_windows = max(1, silence_ms // 20)
        self._start_windows = START_MS // 20
        self._rest = b""
        self._loud = 0
        self._quiet = 0
        self.speaking = False

    def feed(self, pcm: bytes) -> bool | None:
        """True when speech starts, False when it stops, None when nothing changed."""
        data = self._rest + pcm if self._rest else pcm
        whole = len(data) - len(data) % WINDOW_BYTES
        self._rest = data[whole:]
        samples = array("h", data[:whole])
        if sys.byteorder == "big":
            samples.byteswap()  # PCM16 is little-endian on the wire
        change: bool | None = None
        mul = operator.mul
        for start in range(0, len(samples), WINDOW_BYTES // 2):
            window = samples[start : start + WINDOW_BYTES // 2 : STRIDE]
            if sum(map(mul, window, window)) >= self._gate:
                self._loud += 1
                self._quiet = 0
                if not self.speaking and self._loud >= self._start_windows:
                    self.speaking, change = True, True
            else:
                self._loud = 0
                self._quiet += 1
                if self.speaking and self._quiet >= self._silence_windows:
                    self.speaking, change = False, False
        return change
