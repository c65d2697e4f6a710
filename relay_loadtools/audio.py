"""Test audio for load tools, synthesized in code so it ships with the package: PCM16 mono
24 kHz, the relay's and the Realtime API's input format."""

from __future__ import annotations

import math

RATE = 24_000
BYTES_PER_MS = RATE * 2 // 1000  # 48
FRAME_MS = 20
FRAME_BYTES = FRAME_MS * BYTES_PER_MS  # 960: one 20 ms frame

TONE_HZ = 200.0
SPEECH_S, PAUSE_S = 1.5, 2.0


def silence(ms: float) -> bytes:
    return bytes(int(ms * BYTES_PER_MS) // 2 * 2)


def frames(pcm: bytes, frame_bytes: int = FRAME_BYTES) -> list[bytes]:
    """``pcm`` cut into frames of ``frame_bytes`` (the last one may be shorter)."""
    return [pcm[i : i + frame_bytes] for i in range(0, len(pcm), frame_bytes)]


def speech_like(seconds: float = SPEECH_S) -> bytes:
    """A 200 Hz tone with harmonics under a syllable-like envelope (~4 syllables a second,
    100 ms fades): loud enough for an energy VAD to call it speech."""
    samples = int(seconds * RATE)
    out = bytearray()
    for n in range(samples):
        t = n / RATE
        syllables = 0.55 + 0.45 * math.sin(2 * math.pi * 4.0 * t)
        edge = min(1.0, n / 2400, (samples - n) / 2400)
        wave = (
            math.sin(2 * math.pi * TONE_HZ * t)
            + 0.5 * math.sin(2 * math.pi * 2 * TONE_HZ * t)
            + 0.25 * math.sin(2 * math.pi * 3 * TONE_HZ * t)
        )
        out += int(9000 * edge * syllables * wave / 1.75).to_bytes(2, "little", signed=True)
    return bytes(out)


def speech_cycle() -> list[bytes]:
    """One 3.5 s cycle of 20 ms frames: 1.5 s of speech-like tone, then 2 s of silence, so a
    VAD takes a turn per cycle."""
    return frames(speech_like(SPEECH_S) + silence(PAUSE_S * 1000))
