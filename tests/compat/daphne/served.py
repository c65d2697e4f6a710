"""Relays under a real daphne for the tests of this package: ``manage.py serve`` in a
subprocess with every patch on (``daphne``) or with a daphne whose ``onMessage`` changed
(``daphne-changed``: its patch stays off and the plain ASGI path serves), the simulator on a
thread of this process (``Upstream``: the tests read what reached it), and one client
interface on every edge (``asgi``: the in-process communicator, the reference)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from realtime.edge.routing import websocket_urlpatterns
from realtime.kernel.config import load_config
from realtime.kernel.providers import PROVIDER_VARIABLES
from realtime.ops.embedded import EmbeddedSimulator
from realtime_simulator import Faults
from relay_loadtools.ports import free_port, wait_port
from tests.databases import Templates
from tests.relay.conftest import Client, relay_tasks, use_config

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = {
    "RELAY_ALLOW_ANONYMOUS": "true",
    "RELAY_PLAYBACK_REPORT_WAIT_MS": "100",
    "RELAY_MAX_BINARY_BYTES": "4096",  # frames over it: the consumer's own 1009
    # Both client limits below the simulator's 9600-byte reply chunks: autobahn applies
    # daphne's limit to the relay's replies too, so serve never sets it under 256 KiB
    # (every session here would end with 1011 otherwise); messages over it go to the guard.
    "RELAY_MAX_TEXT_BYTES": "4096",
}
DAPHNE_LIMIT = 256 * 1024
SILENCE_1S = bytes(48000)
APPEND = {"realtime": "input_audio_buffer.append", "live": "session.input_audio.append"}

# A daphne that changed what the fast path copies of it (run before `manage.py serve`).
CHANGED_DAPHNE = """
import runpy, sys, time
import daphne.server  # Twisted's asyncio reactor first, as manage.py serve does
from daphne.ws_protocol import WebSocketProtocol

_on_message = WebSocketProtocol.onMessage

def onMessage(self, payload, isBinary):
    self.last_seen = time.time()  # liveness kept in a new attribute
    _on_message(self, payload, isBinary)

WebSocketProtocol.onMessage = onMessage
sys.argv = ["manage.py", *sys.argv[1:]]
runpy.run_path("manage.py", run_name="__main__")
"""


# ---- the simulator, seen from this thread ------------------------------------------------------


class Upstream:
    """The simulator on its own thread: faults for the next connection, the last record."""

    def __init__(self, embedded: EmbeddedSimulator) -> None:
        self.embedded = embedded
        self.loop = embedded.runner.loop

    @property
    def base_url(self) -> str:
        return self.embedded.base_url

    def next_faults(self, faults: Faults) -> None:
        self._on_sim_now(self.embedded.simulator.next_faults, faults)

    def pace(self, pace: str) -> None:
        """The pace of the next connections: "fast", or "realtime" where a test must act
        while an answer is still streaming (this simulator runs beside the relay, not in
        turns with it)."""
        self._on_sim_now(setattr, self.embedded.simulator, "pace", pace)

    def echo(self, on: bool) -> None:
        """Next connections: each audio append comes back at once as reply audio."""
        self._on_sim_now(setattr, self.embedded.simulator, "echo", on)

    def _on_sim_now(self, func: Callable[..., Any], *args: Any) -> None:
        async def call() -> None:
            func(*args)

        self.embedded.runner.run(call(), timeout=5)

    async def on_sim(self, coro_fn: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return await coro_fn()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), self.loop))

    async def last(self) -> Any:
        async def record() -> Any:
            return self.embedded.simulator.connections[-1]

        return await self.on_sim(record)

    async def wait_for(self, event_type: str, timeout: float = 5) -> dict[str, Any]:
        record = await self.last()
        return await self.on_sim(lambda: record.wait_for(event_type, timeout))

    async def closed(self, timeout: float = 5) -> Any:
        record = await self.last()

        async def wait() -> Any:
            async with asyncio.timeout(timeout):
                await record.closed.wait()
            return record

        return await self.on_sim(wait)

    async def until_appended(self, total: int, api: str, timeout: float = 5) -> list[dict]:
        """The appends of the last connection, once they carry ``total`` bytes in all."""
        record = await self.last()

        async def wait() -> list[dict]:
            async with asyncio.timeout(timeout):
                while True:
                    appends = [e for e in record.received if e["type"] == APPEND[api]]
                    if sum(e["audio_bytes"] for e in appends) >= total:
                        return appends
                    record._changed.clear()
                    await record._changed.wait()

        return await self.on_sim(wait)


# ---- relays under daphne -----------------------------------------------------------------------


@dataclass
class Served:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0


class _serving:
    def __init__(
        self, variant: str, api: str, upstream: Upstream, tmp: Path, templates: Templates
    ) -> None:
        self.variant, self.api, self.upstream, self.tmp = variant, api, upstream, tmp
        self.templates = templates

    def __enter__(self) -> Served:
        env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARIABLES}
        for name in ("REDIS_URL", "PORT", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)
        env.update(
            SETTINGS,
            DATABASE_URL=self.templates.sqlite(self.tmp / "relay.sqlite3"),  # migrated
            REALTIME_SIMULATOR_URL=self.upstream.base_url,
            RELAY_UPSTREAM_API=self.api,
            RELAY_WORKERS="1",
            PYTHONUNBUFFERED="1",
            TMPDIR=str(self.tmp),
        )
        port = free_port()
        serve = ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"]
        if self.variant == "daphne":
            argv = [sys.executable, "manage.py", *serve]
        else:
            argv = [sys.executable, "-c", CHANGED_DAPHNE, *serve]
        log = self.tmp / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.served = Served(port, proc, log)
        try:
            wait_port(port, proc, timeout=90)
        except Exception:
            self.__exit__()
            raise
        return self.served

    def __exit__(self, *exc: object) -> None:
        proc = self.served.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


# ---- one client interface on every edge --------------------------------------------------------


class DaphneClient(Client):
    """The in-process tests' ``Client``, over a real WebSocket to a relay under daphne."""

    def __init__(self, port: int, *, origin: str | None = None) -> None:
        self.url = f"ws://127.0.0.1:{port}/realtime"
        self.origin = origin
        self.ws: Any = None
        self.messages = []
        self.audio = bytearray()
        self.close_code = None

    async def connect(self, *, greeting: bool = True) -> dict[str, Any] | None:
        self.ws = await connect(self.url, origin=self.origin, max_size=None)
        if greeting:
            return await self.until(action="connected")
        return None

    async def next(self, timeout: float = 5) -> dict[str, Any] | bytes:
        try:
            async with asyncio.timeout(timeout):
                frame = await self.ws.recv()
        except ConnectionClosed:
            self.close_code = self.ws.close_code
            raise ConnectionError(f"closed with {self.close_code}") from None
        if isinstance(frame, bytes):
            self.audio += frame
            return frame
        message = json.loads(frame)
        self.messages.append(message)
        return message

    async def until_closed(self, timeout: float = 10) -> int:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.next(timeout)
        except ConnectionError:
            pass
        assert self.close_code is not None
        return self.close_code

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send(data)

    async def send_audio(self, pcm: bytes, frame_bytes: int = 960, realtime: bool = False) -> None:
        for offset in range(0, len(pcm), frame_bytes):
            await self.ws.send(pcm[offset : offset + frame_bytes])

    async def close(self) -> None:
        await self.ws.close()


class AsgiClient(Client):
    """The communicator ``Client``, with an Origin header and the same send helpers."""

    def __init__(self, *, origin: str | None = None) -> None:
        super().__init__()
        if origin is not None:
            from realtime.edge.access import RelayAccessMiddleware

            app = RelayAccessMiddleware(URLRouter(websocket_urlpatterns))
            headers = [(b"origin", origin.encode())]
            self.ws = WebsocketCommunicator(app, "/realtime", headers=headers)

    async def send_text(self, text: str) -> None:
        await self.ws.send_to(text_data=text)

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send_to(bytes_data=data)


@dataclass
class Edge:
    name: str
    upstream: Upstream
    relays: Callable[[str, str], Served]
    api: str = "realtime"

    def client(self, *, origin: str | None = None) -> Client:
        if self.name == "asgi":
            env = {"REALTIME_SIMULATOR_URL": self.upstream.base_url, "RELAY_UPSTREAM_API": self.api}
            use_config(load_config({**SETTINGS, **env}))
            return AsgiClient(origin=origin)
        return DaphneClient(self.relays(self.name, self.api).port, origin=origin)

    async def nothing_left(self) -> None:
        """No session task left behind (in process), the upstream closed (anywhere)."""
        record = await self.upstream.closed()
        assert record.closed.is_set()
        if self.name == "asgi":
            assert relay_tasks() == []


EDGES = ["asgi", "daphne", "daphne-changed"]
