"""The soak test behind ``manage.py soak``: N real-time sessions against one relay worker for
M minutes, and whether anything leaked.

Starts the simulator (``runsimulator --pace realtime``) and one relay worker (``serve``, its own
SQLite database in a temporary directory) as subprocesses, then N WebSocket clients that stream
20 ms PCM16 frames in real time (``audio.speech_cycle``: a voice-like tone, 1.5 s on / 2 s off,
so the simulator's energy VAD takes turns) and send a text ``user_message`` every ~30 s. The
worker is sampled before the sessions, once they are all connected (start), at the end with the
sessions still open (end) and after they closed: open file descriptors, RSS, threads, and the
``relay_asyncio_tasks`` / ``relay_active_sessions`` gauges from its /metrics (read over
loopback). Every subprocess is stopped on every exit path; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from realtime.kernel.providers import PROVIDER_VARIABLES
from relay_loadtools import audio
from relay_loadtools.children import Children, tail
from relay_loadtools.procfs import open_fds, rss_bytes, threads
from relay_loadtools.stack import child_env, django_argv, migrate

FRAME_MS = audio.FRAME_MS
TEXT_EVERY_S = 30.0
STARTUP_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
# Provider settings never reach the worker: the soak runs against the simulator only.
STRIPPED_ENV = (
    *PROVIDER_VARIABLES,
    "REDIS_URL",
    "PROMETHEUS_MULTIPROC_DIR",
    "DATABASE_URL",
)


class SoakError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Worker sampling
# ---------------------------------------------------------------------------------------------


def _metric(body: str, name: str) -> float | None:
    """The metric's value, summed over its labels (``relay_active_sessions`` has one per
    edge); None when the scrape has no sample of it."""
    found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.eE+-]+)$", body, re.M)
    return sum(float(value) for value in found) if found else None


def sample(pid: int, port: int) -> dict[str, Any]:
    """The worker's fds, RSS, threads (from /proc) and task/session gauges (from /metrics)."""
    fds = open_fds(pid)
    rss_kb = rss_bytes(pid) // 1024 or None
    thread_count = threads(pid)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    tasks = _metric(body, "relay_asyncio_tasks")
    active = _metric(body, "relay_active_sessions")
    return {
        "time": round(time.time(), 3),
        "fds": fds,
        "rss_kb": rss_kb,
        "threads": thread_count,
        "asyncio_tasks": int(tasks) if tasks is not None else None,
        "active_sessions": int(active) if active is not None else None,
    }


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------


@dataclass
class ClientStats:
    connected: bool = False
    turns: int = 0  # response_done received
    speech_turns: int = 0  # speech_started received
    transcriptions: int = 0
    texts_sent: int = 0
    frames_sent: int = 0
    audio_bytes_in: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    close_code: int | None = None


class SoakClient:
    def __init__(self, number: int, url: str, origin: str, cycle: list[bytes], total: int) -> None:
        self.number = number
        self.url = url
        self.origin = origin
        self.cycle = cycle
        self.total = total
        self.stats = ClientStats()
        self.ws: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(
            self.url, origin=self.origin, open_timeout=CONNECT_TIMEOUT_S, max_size=2**22
        )  # type: ignore[arg-type]
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            while True:
                message = await self.ws.recv()
                if isinstance(message, str):
                    event = json.loads(message)
                    if event.get("type") == "error":
                        raise SoakError(f"client {self.number}: {event}")
                    if event.get("action") == "connected":
                        break
        self.stats.connected = True

    def start(self, until: float) -> None:
        self._tasks = [
            asyncio.create_task(self._read(), name=f"soak-read-{self.number}"),
            asyncio.create_task(self._stream(until), name=f"soak-audio-{self.number}"),
        ]

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        stats = self.stats
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    stats.audio_bytes_in += len(message)
                    continue
                event = json.loads(message)
                kind, action = event.get("type"), event.get("action")
                if kind == "error":
                    stats.errors[str(event.get("code"))] += 1
                elif action == "response_done":
                    stats.turns += 1
                elif action == "speech_started":
                    stats.speech_turns += 1
                elif kind == "transcription":
                    stats.transcriptions += 1
        except ConnectionClosed:
            pass
        if self.ws.close_code is not None and stats.close_code is None:
            stats.close_code = self.ws.close_code

    async def _stream(self, until: float) -> None:
        """20 ms frames on a fixed schedule (no drift), a text message every ~30 s."""
        from websockets.exceptions import ConnectionClosed

        loop = asyncio.get_running_loop()
        begin = loop.time()
        # Stagger clients over the cycle and the text interval.
        offset = self.number * 7
        next_text = begin + 5 + (self.number * TEXT_EVERY_S / max(1, self.total)) % TEXT_EVERY_S
        n = 0
        try:
            while loop.time() < until:
                frame = self.cycle[(n + offset) % len(self.cycle)]
                await self.ws.send(frame)
                self.stats.frames_sent += 1
                n += 1
                now = loop.time()
                if now >= next_text:
                    await self.ws.send(
                        json.dumps({"type": "user_message", "text": f"soak {self.number} {n}"})
                    )
                    self.stats.texts_sent += 1
                    next_text += TEXT_EVERY_S
                await asyncio.sleep(max(0.0, begin + n * FRAME_MS / 1000 - loop.time()))
        except ConnectionClosed:
            pass

    async def wait_streamed(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait([self._tasks[1]], timeout=timeout)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self.ws.close(code=1000)
            if self.stats.close_code is None:
                self.stats.close_code = self.ws.close_code
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run(
    tmp: Path, sessions: int, minutes: float, port: int, sim_port: int,
    log: Callable[[str], object] = print,
) -> dict[str, Any]:  # fmt: skip
    """Start the simulator and the worker (logs and database in ``tmp``), soak, stop them."""
    env = child_env(
        {
            "DATABASE_URL": f"sqlite:///{tmp / 'soak.sqlite3'}",
            "REALTIME_SIMULATOR_URL": f"ws://127.0.0.1:{sim_port}",
            "RELAY_METRICS_ALLOW_LOOPBACK": "true",
            "RELAY_DRAIN_SECONDS": "3",
            "RELAY_MAX_SESSIONS_TOTAL": str(max(500, sessions)),
            "PYTHONUNBUFFERED": "1",
        },
        strip=STRIPPED_ENV,
    )
    env.setdefault("RELAY_LOG_LEVEL", "WARNING")
    children = Children(tmp, grace_s=STOP_TIMEOUT_S)
    try:
        migrate(env, tmp / "migrate.log")
        children.start(
            "simulator",
            django_argv("runsimulator", "--pace", "realtime", "--host", "127.0.0.1",
                        "--port", str(sim_port)),
            env, port=sim_port, timeout=STARTUP_TIMEOUT_S,
        )  # fmt: skip
        worker = children.start(
            "relay",
            django_argv("serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"),
            env, http=f"http://127.0.0.1:{port}/healthz", timeout=STARTUP_TIMEOUT_S,
        )  # fmt: skip
        log(
            f"soak: {sessions} sessions x {minutes} min against worker pid {worker.pid} "
            f"(port {port}, simulator {sim_port})"
        )
        result = asyncio.run(drive(worker.pid, port, sessions, minutes))
        if worker.poll() is not None:
            relay_log = tail(children.log("relay"))
            raise SoakError(f"the relay worker died ({worker.returncode}):\n{relay_log}")
        result["worker_log_tail"] = tail(children.log("relay"), 20)
        return result
    finally:
        children.stop_all()


async def drive(pid: int, port: int, sessions: int, minutes: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    idle = await asyncio.to_thread(sample, pid, port)
    cycle = audio.speech_cycle()
    url, origin = f"ws://127.0.0.1:{port}/realtime", f"http://127.0.0.1:{port}"
    clients = [SoakClient(i, url, origin, cycle, sessions) for i in range(sessions)]
    try:
        outcomes = await asyncio.gather(*(c.connect() for c in clients), return_exceptions=True)
        failures = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise SoakError(f"{len(failures)} sessions failed to connect: {failures[:3]}")
        await asyncio.sleep(1.0)  # let the registry rows and first heartbeats settle
        start = await asyncio.to_thread(sample, pid, port)
        began = loop.time()
        until = began + minutes * 60
        for client in clients:
            client.start(until)
        for client in clients:
            await client.wait_streamed(timeout=max(1.0, until - loop.time()) + 10)
        await asyncio.sleep(1.0)  # replies in flight land
        end = await asyncio.to_thread(sample, pid, port)
        elapsed = loop.time() - began
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    after_close = None
    for _ in range(20):  # ≤ 10 s for the worker to clean up
        await asyncio.sleep(0.5)
        after_close = await asyncio.to_thread(sample, pid, port)
        if after_close["active_sessions"] == 0:
            break
    errors: Counter[str] = Counter()
    close_codes: Counter[str] = Counter()
    for client in clients:
        errors.update(client.stats.errors)
        close_codes[str(client.stats.close_code)] += 1
    return {
        "sessions": sessions,
        "minutes": minutes,
        "elapsed_s": round(elapsed, 1),
        "sessions_connected": sum(c.stats.connected for c in clients),
        "turns": sum(c.stats.turns for c in clients),
        "speech_turns": sum(c.stats.speech_turns for c in clients),
        "transcriptions": sum(c.stats.transcriptions for c in clients),
        "texts_sent": sum(c.stats.texts_sent for c in clients),
        "frames_sent": sum(c.stats.frames_sent for c in clients),
        "audio_bytes_received": sum(c.stats.audio_bytes_in for c in clients),
        "errors": dict(errors),
        "close_codes": dict(close_codes),
        "idle": idle,
        "start": start,
        "end": end,
        "after_close": after_close,
        "clients": [asdict(c.stats) | {"errors": dict(c.stats.errors)} for c in clients],
    }


def format_table(report: dict[str, Any]) -> str:
    rows = [("", "idle", "start", "end", "after close", "end - start")]
    for key in ("asyncio_tasks", "fds", "rss_kb", "threads", "active_sessions"):
        values = [(report.get(name) or {}).get(key) for name in ("idle", "start", "end")]
        after = (report.get("after_close") or {}).get(key)
        start, end = values[1], values[2]
        delta = end - start if isinstance(start, int) and isinstance(end, int) else None
        rows.append(
            (
                key,
                *(str(v) for v in values),
                str(after),
                f"{delta:+d}" if delta is not None else "?",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.append(
        f"sessions {report['sessions_connected']}/{report['sessions']}, "
        f"{report['elapsed_s']} s: turns (response_done) {report['turns']}, speech turns "
        f"{report['speech_turns']}, transcriptions {report['transcriptions']}, texts sent "
        f"{report['texts_sent']}, frames sent {report['frames_sent']}"
    )
    lines.append(f"errors by code: {report['errors'] or 'none'}")
    lines.append(f"close codes: {report['close_codes']}")
    return "\n".join(lines)
