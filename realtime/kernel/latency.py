"""An answer's latency figures, and the quantiles the admin reads from them (pure: no I/O).

The session measures them (``realtime.session.latency``); the session's record keeps them (the
``latency`` column of ``RealtimeSession``); the admin shows p50/p95 (``realtime.admin``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

MAX_KEPT = 500  # per session: the most recent answers' figures (the admin's chart and p50/p95)

# Bucket upper bounds (ms) of the per-session counts the usage page adds up per day; the last
# bucket is everything above. Same spirit as the Prometheus histogram's buckets.
BUCKETS_MS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000, 3000, 5000)


@dataclass(frozen=True, slots=True)
class Latency:
    """One answer's figures in milliseconds; None where they do not apply (a text-only answer
    has no ``first_audio``/``relay``, an answer no user turn asked for has none)."""

    first_audio: float | None = None
    first_text: float | None = None
    relay: float | None = None

    def wire(self) -> list[float | None]:
        """The compact form the session's record keeps: [first_audio, first_text, relay]."""
        return [self.first_audio, self.first_text, self.relay]


NONE = Latency()


def bucket_of(value: float) -> int:
    """The index in a per-bucket count row (``BUCKETS_MS`` + one above the last)."""
    return bisect.bisect_left(BUCKETS_MS, value)


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by the nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, int(-(-q * len(ordered) // 1)))  # ceil(q * n), at least 1
    return ordered[min(rank, len(ordered)) - 1]


def bucket_percentile(counts: list[int], q: float) -> float | None:
    """The ``q`` quantile of answers counted per bucket of ``BUCKETS_MS``: interpolated inside
    its bucket, as Prometheus' ``histogram_quantile`` does (above the last bound: that bound)."""
    total = sum(counts)
    if not total:
        return None
    target = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= target:
            if index >= len(BUCKETS_MS):
                return float(BUCKETS_MS[-1])
            low = BUCKETS_MS[index - 1] if index else 0
            high = BUCKETS_MS[index]
            return round(low + (high - low) * (target - seen) / count)
        seen += count
    return float(BUCKETS_MS[-1])
