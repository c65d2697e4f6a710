"""Known utterances: bundled spoken WAVs the simulated "speech recognition" knows the text of.

Committed input audio is compared with each bundled recording by its loudness envelope, the
per-20 ms-window energies the VAD already measures:

1. levels in dBFS (floor -70), trimmed to the span between the first and last window within
   30 dB of the peak (and above -55 dBFS), so leading/trailing silence and faint noise drop out;
2. the trimmed span must last as long as the recording's, within 10 % (at least 3 windows);
3. the span is stretched linearly to the recording's length and compared by Pearson
   correlation (gain-invariant), at lags of -1/0/+1 window, against the recording's envelope
   measured at window phases of 0, 5, 10 and 15 ms (the live audio's windows fall wherever the
   session clock puts them); a correlation of at least 0.8 is a match, the best match wins.

The table lives in ``utterances/utterances.json`` (file name and text, one entry each).
"""

from __future__ import annotations

import functools
import json
import math
import wave
from dataclasses import dataclass
from pathlib import Path

from .vad import RATE, Segment, window_energies

TABLE_DIR = Path(__file__).resolve().parent / "utterances"
FLOOR_DB = -70.0
TRIM_BELOW_PEAK_DB = 30.0
TRIM_ABSOLUTE_DB = -55.0
DURATION_TOLERANCE = 0.10
MIN_TOLERANCE_WINDOWS = 3
MIN_CORRELATION = 0.8
PHASES_MS = (0, 5, 10, 15)
_FULL_SCALE = 32768.0**2


@dataclass(frozen=True)
class KnownUtterance:
    file: str
    text: str
    references: tuple[tuple[float, ...], ...]  # trimmed dB envelope, one per window phase


def levels_db(envelope: list[float]) -> list[float]:
    return [max(FLOOR_DB, 10.0 * math.log10(e / _FULL_SCALE + 1e-12)) for e in envelope]


def voiced_span(levels: list[float]) -> list[float] | None:
    if not levels:
        return None
    gate = max(TRIM_ABSOLUTE_DB, max(levels) - TRIM_BELOW_PEAK_DB)
    voiced = [i for i, level in enumerate(levels) if level >= gate]
    if not voiced:
        return None
    return levels[voiced[0] : voiced[-1] + 1]


def _stretch(values: list[float], length: int) -> list[float]:
    if len(values) == length:
        return values
    if len(values) == 1 or length == 1:
        return [values[0]] * length
    scale = (len(values) - 1) / (length - 1)
    out = []
    for i in range(length):
        pos = i * scale
        j = int(pos)
        frac = pos - j
        nxt = values[min(j + 1, len(values) - 1)]
        out.append(values[j] * (1.0 - frac) + nxt * frac)
    return out


def _correlation(a: tuple[float, ...] | list[float], b: list[float]) -> float:
    n = len(a)
    mean_a = sum(a) / n
    mean_b = sum(b) / n
    cov = var_a = var_b = 0.0
    for x, y in zip(a, b, strict=True):
        dx, dy = x - mean_a, y - mean_b
        cov += dx * dy
        var_a += dx * dx
        var_b += dy * dy
    if var_a == 0.0 or var_b == 0.0:
        return 0.0
    return cov / math.sqrt(var_a * var_b)


def similarity(utterance: KnownUtterance, span: list[float]) -> float | None:
    """Best correlation of a trimmed span with the utterance, None if the lengths differ."""
    length = len(utterance.references[0])
    tolerance = max(MIN_TOLERANCE_WINDOWS, round(length * DURATION_TOLERANCE))
    if abs(len(span) - length) > tolerance:
        return None
    best = -1.0
    for lag in (-1, 0, 1):
        shifted = span[lag:] if lag > 0 else span[: len(span) + lag] if lag < 0 else span
        if len(shifted) < 2:
            continue
        for reference in utterance.references:
            best = max(best, _correlation(reference, _stretch(shifted, len(reference))))
    return best


def _read_pcm(path: Path) -> bytes:
    with wave.open(str(path)) as wav:
        if (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) != (RATE, 2, 1):
            raise ValueError(f"{path.name}: known utterances must be 24 kHz 16-bit mono")
        return wav.readframes(wav.getnframes())


@functools.cache
def known_utterances() -> tuple[KnownUtterance, ...]:
    table = json.loads((TABLE_DIR / "utterances.json").read_text(encoding="utf-8"))
    result = []
    for entry in table:
        pcm = _read_pcm(TABLE_DIR / entry["file"])
        references = []
        for phase_ms in PHASES_MS:
            offset = phase_ms * RATE // 1000 * 2
            span = voiced_span(levels_db(window_energies(pcm[offset:])))
            if span is None:
                raise ValueError(f"{entry['file']}: no speech in a known utterance")
            references.append(tuple(span))
        result.append(KnownUtterance(entry["file"], entry["text"], tuple(references)))
    return tuple(result)


def recognise(segment: Segment) -> str | None:
    """The text of the known utterance this committed audio is, or None."""
    if segment.truncated or not segment.voiced_windows:
        return None
    span = voiced_span(levels_db(segment.envelope))
    if span is None:
        return None
    best_text, best_score = None, MIN_CORRELATION
    for utterance in known_utterances():
        score = similarity(utterance, span)
        if score is not None and score >= best_score:
            best_text, best_score = utterance.text, score
    return best_text
