"""Deterministic, speech-like PCM16 24 kHz synthesis.

A reply is a sequence of 200 ms "syllables" (a voiced tone with a few harmonics under a
rise-and-fall envelope); which of eight precomputed syllables is used depends on the reply
text, so the same text always gives the same bytes. Precomputing keeps a reply's cost at a
few byte-slices, and the base64 of each whole syllable is cached too.
"""

from __future__ import annotations

import array
import base64
import functools
import math

RATE = 24000
BYTES_PER_MS = RATE * 2 // 1000  # 48
CHUNK_MS = 200
CHUNK_BYTES = CHUNK_MS * BYTES_PER_MS  # 9600 bytes per audio delta
MS_PER_CHAR = 60
MAX_MS = 6000
MIN_MS = 400
_VARIANTS = 8


def reply_duration_ms(text: str) -> int:
    return max(MIN_MS, min(MAX_MS, MS_PER_CHAR * len(text)))


@functools.cache
def _syllable(variant: int) -> bytes:
    n = CHUNK_MS * RATE // 1000
    f0 = 110.0 + 18.0 * variant
    samples = array.array("h")
    for i in range(n):
        t = i / RATE
        env = math.sin(math.pi * i / n) ** 2
        s = (
            0.6 * math.sin(2 * math.pi * f0 * t)
            + 0.25 * math.sin(2 * math.pi * 2 * f0 * t)
            + 0.15 * math.sin(2 * math.pi * 3.5 * f0 * t)
        )
        samples.append(int(9000 * env * s))
    return samples.tobytes()


@functools.cache
def _syllable_b64(variant: int) -> str:
    return base64.b64encode(_syllable(variant)).decode("ascii")


def _variant(text: str, index: int) -> int:
    if not text:
        return index % _VARIANTS
    return (ord(text[(index * 7) % len(text)]) + index) % _VARIANTS


def audio_chunks(text: str, duration_ms: int | None = None) -> list[tuple[str, int]]:
    """The reply audio as (base64, byte length) deltas of CHUNK_MS each (the last may be short)."""
    total_ms = reply_duration_ms(text) if duration_ms is None else duration_ms
    chunks: list[tuple[str, int]] = []
    index = 0
    remaining = total_ms * BYTES_PER_MS
    while remaining > 0:
        variant = _variant(text, index)
        if remaining >= CHUNK_BYTES:
            chunks.append((_syllable_b64(variant), CHUNK_BYTES))
            remaining -= CHUNK_BYTES
        else:
            raw = _syllable(variant)[:remaining]
            chunks.append((base64.b64encode(raw).decode("ascii"), remaining))
            remaining = 0
        index += 1
    return chunks


def transcript_pieces(text: str, chunks: int) -> list[str]:
    """Split ``text`` into one transcript piece per audio chunk (words spread evenly; pieces
    after the first carry their leading space, so joining them gives ``text`` back; trailing
    chunks get "" once the words run out)."""
    words = text.split(" ")
    per_chunk = max(1, -(-len(words) // max(1, chunks)))
    pieces: list[str] = []
    for index in range(chunks):
        piece = " ".join(words[index * per_chunk : (index + 1) * per_chunk])
        pieces.append(" " + piece if piece and any(pieces) else piece)
    return pieces


def speech_pcm(duration_ms: int, seed: str = "speech") -> bytes:
    """Loud speech-like PCM for tests and load scripts (e.g. to trigger server VAD)."""
    return b"".join(base64.b64decode(b64) for b64, _ in audio_chunks(seed, duration_ms))
