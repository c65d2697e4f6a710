"""Load generator: worker processes, each driving a share of the sessions on one event loop.

A worker is told (over a Pipe) to ``connect`` its sessions, then to ``stream`` stamped PCM16
frames at real-time pace for some seconds, then to ``close``. Sessions are spread over the
frame period by a global phase (session i of N sends at ``i/N`` of the period), as independent
clients would be, and one scheduler per worker wakes once per ~2 ms slot rather than once per
session. Sending is a synchronous transport write (see ``wsclient``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from relay_loadtools import stamps
from relay_loadtools.audio import BYTES_PER_MS
from relay_loadtools.wsclient import OP_BINARY, OP_TEXT, RawWebSocket, open_ws

DELTA_KEY = b'"delta":"'
APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'


@dataclass
class Target:
    """Where a session connects: ``kind`` "direct" (realtime protocol) or "relay" (client)."""

    kind: str
    host: str
    port: int
    path: str
    origin: str | None = None


@dataclass
class Counters:
    lat_newest: array = field(default_factory=lambda: array("d"))
    lat_all: array = field(default_factory=lambda: array("d"))
    recording: bool = False
    since_ns: int = 0  # frames sent before this (the warm-up) are not recorded


class Session:
    def __init__(self, target: Target, counters: Counters) -> None:
        self.target = target
        self.counters = counters
        self.ws: RawWebSocket | None = None
        self.ready = asyncio.Event()
        self.stamps_seen = 0
        self.sent_frames = 0
        self.greeting_ms = 0.0
        self._t0 = 0
        self._pending: list[bytes] = []

    async def connect(self, timeout: float) -> None:
        t = self.target
        self._t0 = time.perf_counter_ns()
        async with asyncio.timeout(timeout):
            self.ws = await open_ws(t.host, t.port, t.path, self.on_message, t.origin)
            await self.ready.wait()

    def on_message(self, opcode: int, payload: bytes) -> None:
        if not self.ready.is_set():
            if opcode == OP_TEXT:
                self.greeting_ms = (time.perf_counter_ns() - self._t0) / 1e6
                self.ready.set()
            return
        if self.target.kind == "relay":
            if opcode != OP_BINARY:
                return
            data = payload
        else:
            i = payload.find(DELTA_KEY)
            if opcode != OP_TEXT or i < 0:
                return
            data = base64.b64decode(payload[i + len(DELTA_KEY) : payload.rindex(b'"')])
        sent = stamps.scan_all(data)
        if not sent:
            return
        now = time.perf_counter_ns()
        self.stamps_seen += len(sent)
        c = self.counters
        newest = max(sent)
        if c.recording and newest >= c.since_ns:
            c.lat_newest.append((now - newest) / 1e6)
            for s in sent:
                c.lat_all.append((now - s) / 1e6)

    def send_frame(self, frame: bytes, coalesce: int) -> None:
        """Send one client frame (direct clients join ``coalesce`` frames per append)."""
        ws = self.ws
        if ws is None:
            return
        self.sent_frames += 1
        if self.target.kind == "relay":
            ws.send_binary(frame)
            return
        self._pending.append(frame)
        if len(self._pending) >= coalesce:
            self.flush()

    def flush(self) -> None:
        """Send a direct client's partial batch (the stream's last frames are frames too)."""
        if self.ws is None or not self._pending:
            return
        chunk = b"".join(self._pending)
        self._pending.clear()
        self.ws.send_text(APPEND_HEAD + base64.b64encode(chunk).decode() + '"}')


class Worker:
    def __init__(self) -> None:
        self.sessions: list[Session] = []
        self.counters = Counters()

    async def connect(
        self, targets: list[Target], timeout: float = 30.0, concurrency: int = 16
    ) -> dict[str, Any]:
        """Open sessions, ``concurrency`` handshakes at a time (0: all at once, a storm)."""
        sem = asyncio.Semaphore(concurrency or len(targets) or 1)
        errors: list[str] = []

        async def one(target: Target) -> None:
            session = Session(target, self.counters)
            async with sem:
                try:
                    await session.connect(timeout)
                    self.sessions.append(session)
                except Exception as exc:  # reported, not raised: the sweep goes on
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    if session.ws is not None:
                        session.ws.close()

        await asyncio.gather(*(one(t) for t in targets))
        greet = sorted(s.greeting_ms for s in self.sessions)
        return {"connected": len(self.sessions), "failed": len(errors), "errors": errors[:5],
                "greeting_ms": greet}  # fmt: skip

    async def stream(self, cmd: dict[str, Any]) -> dict[str, Any]:
        frame_bytes: int = cmd["frame_bytes"]
        seconds: float = cmd["seconds"]
        phases: list[float] = cmd["phases"][: len(self.sessions)]
        coalesce: int = cmd.get("direct_coalesce", 1)
        period = frame_bytes / BYTES_PER_MS / 1000
        frames_each = int(seconds / period)
        order = sorted(range(len(phases)), key=lambda i: phases[i])
        n_slots = max(1, min(len(order), math.ceil(period / 0.002)))  # one wake-up per ~2 ms
        slots: list[list[Session]] = [[] for _ in range(n_slots)]
        for i in order:
            slots[min(n_slots - 1, int(phases[i] * n_slots))].append(self.sessions[i])
        template = stamps.make_frame_template(frame_bytes)
        self.counters = Counters()
        for s in self.sessions:
            s.counters, s.stamps_seen, s.sent_frames, s._pending = self.counters, 0, 0, []
        self.counters.recording = True
        self.counters.since_ns = int((cmd["start_at"] + cmd.get("warmup_s", 0.0)) * 1e9)
        lags = array("d")
        t0 = cmd["start_at"]
        seq = 0
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        for k in range(frames_each):
            for j, slot in enumerate(slots):
                due = t0 + k * period + j * period / n_slots
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                else:
                    lags.append(-wait * 1000)
                    if -wait > 0.002:
                        await asyncio.sleep(0)  # let receives run even when behind
                for s in slot:
                    seq += 1
                    s.send_frame(stamps.stamp_into(template, seq, time.perf_counter_ns()), coalesce)
        for s in self.sessions:
            s.flush()
        send_end = time.perf_counter()
        expected = sum(s.sent_frames for s in self.sessions)
        deadline = time.perf_counter() + cmd.get("drain_s", 2.0)
        while time.perf_counter() < deadline:
            if sum(s.stamps_seen for s in self.sessions) >= expected:
                break
            await asyncio.sleep(0.02)
        self.counters.recording = False
        seen = sum(s.stamps_seen for s in self.sessions)
        lags = array("d", sorted(lags))
        return {
            "sessions": len(self.sessions),
            "frames_sent": expected,
            "stamps_seen": seen,
            "send_seconds": send_end - t0,
            "lat_newest": self.counters.lat_newest.tobytes(),
            "lat_all": self.counters.lat_all.tobytes(),
            "late_ticks": len(lags),
            "late_p99_ms": lags[int(len(lags) * 0.99)] if lags else 0.0,
        }

    async def close(self) -> dict[str, Any]:
        for s in self.sessions:
            if s.ws is not None:
                s.ws.close()
        waits = [s.ws.closed for s in self.sessions if s.ws is not None]
        if waits:
            await asyncio.wait(waits, timeout=5)
        n = len(self.sessions)
        self.sessions = []
        return {"closed": n}


async def _serve(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker()
    try:
        while True:
            op, arg = await loop.run_in_executor(None, conn.recv)
            if op == "exit":
                break
            try:
                if op == "connect":
                    reply: dict[str, Any] = await worker.connect(
                        [Target(**t) for t in arg["targets"]],
                        arg.get("timeout", 30.0),
                        arg.get("concurrency", 16),
                    )
                elif op == "stream":
                    reply = await worker.stream(arg)
                elif op == "close":
                    reply = await worker.close()
                else:
                    reply = {"error": f"unknown op {op}"}
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            conn.send(reply)
    finally:
        with contextlib.suppress(Exception):
            await worker.close()


def worker_main(conn: Connection) -> None:
    """Entry point of a load generator process."""
    with contextlib.suppress(KeyboardInterrupt, EOFError):
        asyncio.run(_serve(conn))
