"""Readings from /proc: a process's CPU, memory, fds and threads; the machine's busy time."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _status(pid: int, key: str) -> int | None:
    """The first number of one line of /proc/PID/status (None when absent, e.g. a zombie)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def rss_bytes(pid: int) -> int:
    return (_status(pid, "VmRSS") or 0) * 1024


def threads(pid: int) -> int | None:
    return _status(pid, "Threads")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine spent busy (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def wait_quiet(limit_cores: float = 0.3, max_wait_s: float = 10.0) -> float:
    """Wait (bounded) until the rest of the machine is nearly idle; the busy share seen last."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(0.5)
        share = (machine_busy_seconds() - b0) / (time.monotonic() - t0)
        if share <= limit_cores or time.monotonic() >= deadline:
            return round(share, 2)


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, Python and kernel: the header of every benchmark report."""
    model = ""
    mem = 0
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), "")
        mem = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux ``/proc/PID/task/*/children``)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    return sorted(set(out))
