"""GPT-Live audio formats: PCM16 at 16/24 kHz and G.711 (mu-law, A-law) at 8 kHz.

Input is decoded to PCM16 at the format's own rate for the VAD; replies are synthesised at
24 kHz (synth.py) and converted to the session format on the way out. The 24 kHz -> 16/8 kHz
conversion averages neighbouring samples: crude, but the simulated speech has no content
above 1 kHz that it could alias.
"""

from __future__ import annotations

import array
import functools
from dataclasses import dataclass
from typing import Any

SYNTH_RATE = 24000


@dataclass(frozen=True)
class AudioFormat:
    type: str  # "audio/pcm" | "audio/pcmu" | "audio/pcma"
    rate: int

    @classmethod
    def from_config(cls, value: dict[str, Any]) -> AudioFormat:
        return cls(str(value["type"]), int(value["rate"]))

    @property
    def bytes_per_ms(self) -> int:
        return self.rate * 2 // 1000 if self.type == "audio/pcm" else self.rate // 1000


def _ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


def _alaw_to_linear(code: int) -> int:
    code ^= 0x55
    magnitude = (code & 0x0F) << 4
    segment = (code & 0x70) >> 4
    if segment == 0:
        magnitude += 8
    else:
        magnitude = (magnitude + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


_ULAW_SEGMENT_ENDS = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _linear_to_ulaw(sample: int) -> int:
    # The classic g711.c routine on the top 14 bits (what CPython's audioop does too).
    value, mask = sample >> 2, 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 0x21
    segment = next((i for i, end in enumerate(_ULAW_SEGMENT_ENDS) if value <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


_ALAW_SEGMENT_ENDS = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _linear_to_alaw(sample: int) -> int:
    sample >>= 3
    mask = 0xD5
    if sample < 0:
        mask, sample = 0x55, -sample - 1
    segment = next((i for i, end in enumerate(_ALAW_SEGMENT_ENDS) if sample <= end), 8)
    if segment >= 8:
        return 0x7F ^ mask
    shift = 1 if segment < 2 else segment
    return ((segment << 4) | ((sample >> shift) & 0x0F)) ^ mask


@functools.cache
def _decode_table(kind: str) -> bytes:
    decode = _ulaw_to_linear if kind == "audio/pcmu" else _alaw_to_linear
    return array.array("h", (decode(code) for code in range(256))).tobytes()


@functools.cache
def _encode_table(kind: str) -> bytes:
    encode = _linear_to_ulaw if kind == "audio/pcmu" else _linear_to_alaw
    return bytes(encode(value - 65536 if value >= 32768 else value) for value in range(65536))


def decode_input(fmt: AudioFormat, raw: bytes) -> bytes:
    """Raw session-format audio -> PCM16 at ``fmt.rate``."""
    if fmt.type == "audio/pcm":
        return raw[: len(raw) - len(raw) % 2]
    table = memoryview(_decode_table(fmt.type)).cast("h")
    return array.array("h", (table[code] for code in raw)).tobytes()


def encode_output(fmt: AudioFormat, pcm24: bytes) -> bytes:
    """PCM16 at 24 kHz -> the session format."""
    if fmt == AudioFormat("audio/pcm", SYNTH_RATE):
        return pcm24
    samples = memoryview(pcm24).cast("h")
    if fmt.rate == 16000:
        out = array.array("h")
        for i in range(0, len(samples) - 2, 3):
            out.append(samples[i])
            out.append((samples[i + 1] + samples[i + 2]) // 2)
        return out.tobytes()
    down = [
        (samples[i] + samples[i + 1] + samples[i + 2]) // 3 for i in range(0, len(samples) - 2, 3)
    ]
    if fmt.type == "audio/pcm":
        return array.array("h", down).tobytes()
    table = _encode_table(fmt.type)
    return bytes(table[value & 0xFFFF] for value in down)
