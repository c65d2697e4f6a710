"""One load point: N sessions streaming for some seconds against one contender."""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay_loadtools.loadgen import Target
from relay_loadtools.pool import LoadGenPool
from relay_loadtools.procfs import cpu_seconds, machine_busy_seconds, wait_quiet


@dataclass
class Contender:
    name: str
    label: str
    targets: list[Target]  # round robin over these
    pids: list[int] = field(default_factory=list)  # the relay processes (none for direct)

    def target(self, i: int) -> Target:
        return self.targets[i % len(self.targets)]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    k = min(len(values) - 1, max(0, round(q * (len(values) - 1))))
    return values[k]


def _latencies(replies: list[dict[str, Any]], key: str) -> list[float]:
    out = array("d")
    for r in replies:
        out.frombytes(r[key])
    return sorted(out)


def run_point(
    pool: LoadGenPool,
    contender: Contender,
    sessions: int,
    frame_bytes: int,
    seconds: float,
    watch: dict[str, int],
    on_streaming: Callable[[], object] | None = None,
    quiet_wait_s: float = 0.0,
) -> dict[str, Any]:
    """Connect, stream, close; CPU of every watched process over the streaming window."""
    targets = [contender.target(i) for i in range(sessions)]
    # Other jobs on a shared machine distort every figure: wait (bounded) for a quiet moment.
    busy_before = wait_quiet(max_wait_s=quiet_wait_s) if quiet_wait_s > 0 else None
    t_connect = time.perf_counter()
    connects = pool.connect(targets)
    connect_s = time.perf_counter() - t_connect
    connected = sum(r["connected"] for r in connects)
    errors = [e for r in connects for e in r["errors"]]
    parts = pool.split(targets)
    start_at = time.perf_counter() + 0.3
    coalesce = max(1, -(-960 // frame_bytes))  # direct clients join frames like the relay
    pool.send(
        "stream",
        [
            {
                "frame_bytes": frame_bytes,
                "seconds": seconds,
                "start_at": start_at,
                "phases": [i / sessions for i in part],
                "direct_coalesce": coalesce,
                "warmup_s": min(1.0, seconds / 4),
            }
            for part in parts
        ],
    )
    if on_streaming is not None:
        on_streaming()
    time.sleep(max(0.0, start_at - time.perf_counter()))
    busy0, cpu0 = machine_busy_seconds(), {n: cpu_seconds(pid) for n, pid in watch.items()}
    wall0 = time.perf_counter()
    time.sleep(seconds)
    busy1, cpu1 = machine_busy_seconds(), {n: cpu_seconds(pid) for n, pid in watch.items()}
    wall = time.perf_counter() - wall0
    replies = pool.collect(seconds + 60)
    pool.close()
    cpu = {name: round(cpu1[name] - cpu0[name], 3) for name in watch}
    # Everything else on the machine over the window (other jobs, the parent, idle relays).
    cpu["other"] = round(max(0.0, busy1 - busy0 - sum(cpu.values())), 3)
    lat = _latencies(replies, "lat_newest")
    lat_all = _latencies(replies, "lat_all")
    sent = sum(r["frames_sent"] for r in replies)
    seen = sum(r["stamps_seen"] for r in replies)
    relay_cpu = sum(v for n, v in cpu.items() if n.startswith("relay"))
    send_s = max((r["send_seconds"] for r in replies if r["sessions"]), default=seconds)
    return {
        "sessions": sessions,
        "connected": connected,
        "connect_errors": errors[:3],
        "connect_s": round(connect_s, 2),
        "machine_busy_before_cores": busy_before,
        "frames_sent": sent,
        "frames_lost": max(0, sent - seen),
        "p50_ms": round(percentile(lat, 0.50), 2),
        "p99_ms": round(percentile(lat, 0.99), 2),
        "max_ms": round(lat[-1], 2) if lat else None,
        "p99_incl_coalescing_ms": round(percentile(lat_all, 0.99), 2),
        "send_pace": round(seconds / send_s, 3) if send_s else None,
        "loadgen_late_p99_ms": round(max(r["late_p99_ms"] for r in replies), 2),
        "cpu_s": cpu,
        "wall_s": round(wall, 2),
        "relay_cpu_share": round(relay_cpu / wall, 3) if contender.pids else None,
        "relay_cpu_us_per_frame": round(relay_cpu / sent * 1e6, 1)
        if contender.pids and sent
        else None,
    }
