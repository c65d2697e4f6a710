"""The user's speech, heard by the relay itself: for upstreams that report no speech events.

GPT-Live sends nothing when the user starts or stops speaking, yet a client must stop playing
the assistant's audio the moment it is interrupted. This detector measures the loudness of
the client audio the relay forwards anyway (20 ms windows, every 4th sample, like the
simulator's VAD) and reports speech after ``START_MS`` of sound above the gate and its end
after ``silence_ms`` below it. The gate follows ``RELAY_VAD_THRESHOLD``: ``-80 + 80 ×
threshold`` dBFS (0.5 → -40 dBFS). A phone session's audio (G.711 μ-law 8 kHz) is expanded to
linear samples through a 256-entry table first.
"""

from __future__ import annotations

import operator
import sys
from array import array

WINDOW_BYTES = 960  # 20 ms of PCM16 24 kHz mono
STRIDE = 4
START_MS = 60  # three loud windows in a row: a click or a breath is not speech


def _ulaw_linear(code: int) -> int:
    """One G.711 μ-law byte as a 16-bit linear sample (ITU-T G.711's expansion)."""
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


ULAW_TABLE = array("h", (_ulaw_linear(code) for code in range(256)))


class SpeechDetector:
    def __init__(self, *, threshold: float, silence_ms: int, audio_format: str = "pcm16") -> None:
        amplitude = 32768.0 * 10 ** ((-80 + 80 * threshold) / 20)
        self._ulaw = audio_format == "pcmu"
        # one 20 ms window: 480 samples (960 bytes) at 24 kHz, 160 samples (bytes) of μ-law
        self._window_bytes = 160 if self._ulaw else WINDOW_BYTES
        self._stride = 1 if self._ulaw else STRIDE
        samples = 160 if self._ulaw else WINDOW_BYTES // 2
        self._gate = amplitude * amplitude * len(range(0, samples, self._stride))
        self._silence_windows = max(1, silence_ms // 20)
        self._start_windows = START_MS // 20
        self._rest = b""
        self._loud = 0
        self._quiet = 0
        self.speaking = False

    def feed(self, pcm: bytes) -> bool | None:
        """True when speech starts, False when it stops, None when nothing changed."""
        data = self._rest + pcm if self._rest else pcm
        window_bytes = self._window_bytes
        whole = len(data) - len(data) % window_bytes
        self._rest = data[whole:]
        if self._ulaw:
            samples = array("h", map(ULAW_TABLE.__getitem__, data[:whole]))
            per_window = window_bytes
        else:
            samples = array("h", data[:whole])
            if sys.byteorder == "big":
                samples.byteswap()  # PCM16 is little-endian on the wire
            per_window = window_bytes // 2
        change: bool | None = None
        mul = operator.mul
        stride = self._stride
        for start in range(0, len(samples), per_window):
            window = samples[start : start + per_window : stride]
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
