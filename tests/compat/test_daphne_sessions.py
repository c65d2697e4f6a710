"""Sessions through a real daphne on a real socket, on the fast path and on the plain path.

The in-process consumer tests (tests/relay) talk to the consumer through Channels'
``WebsocketCommunicator``, which never runs ``compat/daphne_fastpath.py``: audio frames taken
from daphne's protocol straight into the session, replies written as frames of the relay's
own, eager socket writes. Here a subset of those tests — a text turn, audio in and audio
out, frames sent before the session is ready, barge-in, interrupt, close codes — runs on
three edges, with the same assertions:

- ``asgi``: the communicator (the in-process reference);
- ``daphne``: ``manage.py serve`` in a subprocess, every patch on (the fast path);
- ``daphne-changed``: the same, but with a daphne whose ``onMessage`` does more than the fast
  path copies (it notes the client's liveness in a new attribute): its patch logs one
  warning naming daphne and its version, stays off, and the plain ASGI path serves the
  same sessions.

The upstream is one simulator on a thread of this process, so tests can read what reached it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from realtime.edge.routing import websocket_urlpatterns
from realtime.kernel.config import load_config
from realtime.kernel.providers import PROVIDER_VARIABLES
from realtime.ops.embedded import EmbeddedSimulator, start_simulator_thread
from realtime_simulator import Faults
from relay_loadtools.ports import free_port, wait_port
from tests.databases import Templates
from tests.relay.conftest import Client, relay_tasks, use_config, wav_pcm

ROOT = Path(__file__).resolve().parents[2]
# slow: `manage.py serve` processes (one per daphne variant and API family)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

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


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    embedded = start_simulator_thread(pace="fast")
    try:
        yield Upstream(embedded)
    finally:
        embedded.stop()


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


@pytest.fixture(scope="module")
def relays(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory, db_templates: Templates
) -> Iterator[Callable[[str, str], Served]]:
    """relays(variant, api): ``manage.py serve`` ("daphne" or "daphne-changed") on upstream
    API family ``api``, started on first use and shared by the module's tests."""
    started: dict[tuple[str, str], Served] = {}
    with ExitStack() as stack:

        def relay(variant: str, api: str) -> Served:
            if (variant, api) not in started:
                started[variant, api] = stack.enter_context(
                    _serving(variant, api, upstream, tmp_path_factory.mktemp(variant), db_templates)
                )
            return started[variant, api]

        yield relay


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


@pytest.fixture(params=EDGES)
def edge(request, upstream: Upstream, relays) -> Edge:
    upstream.pace("fast")
    upstream.echo(False)
    return Edge(request.param, upstream, relays)


# ---- the sessions ------------------------------------------------------------------------------


async def test_a_text_turn_streams_text_and_audio(edge):
    client = edge.client()
    greeting = await client.connect()
    assert greeting["greeting"] == "You are now connected to the realtime relay."
    info = await client.until(action="session_info")
    assert info["provider"] == "Simulator (gpt-realtime)"
    await client.send_json({"type": "user_message", "text": "hello there"})
    done = await client.until(action="text_done")
    deltas = client.of("text_delta")
    assert deltas and all(d["id"] == done["id"] for d in deltas)
    assert "You said: hello there." in "".join(d["delta"] for d in deltas)
    assert (await client.until(action="response_done"))["status"] == "completed"
    assert len(client.audio) > 0 and len(client.audio) % 2 == 0
    await client.close()
    await edge.nothing_left()


@pytest.mark.parametrize(
    ("edge_name", "api"),
    [("asgi", "realtime"), ("daphne", "realtime"), ("daphne", "live"),
     ("daphne-changed", "realtime")],
)  # fmt: skip
async def test_audio_in_gives_speech_started_a_transcription_and_audio_out(
    upstream, relays, edge_name, api
):
    edge = Edge(edge_name, upstream, relays, api)
    client = edge.client()
    await client.connect()
    await client.send_audio(wav_pcm("hello_24k.wav") + SILENCE_1S)
    await client.until(action="speech_started")
    await client.until_seen(type="transcription", action=None)
    await client.until_seen(action="response_done")
    [transcription] = client.of("transcription")
    assert transcription["id"] and transcription["text"]
    assert len(client.audio) > 48000 // 2  # at least half a second of reply audio
    boundary = client.of("control", "audio_start")
    assert boundary and boundary[0]["id"] == f"{boundary[0]['item_id']}-0"
    await client.close()
    await edge.nothing_left()


async def test_audio_sent_before_the_session_is_ready_is_neither_lost_nor_reordered(edge):
    """Frames queued on the ASGI path while the session connects, then frames the fast path
    takes: every byte reaches the upstream, in order, coalesced into ~20 ms appends."""
    edge.upstream.next_faults(Faults(first_event_delay_ms=300))
    client = edge.client()
    await client.connect(greeting=False)
    pcm = bytes(range(256)) * 150  # 38,400 bytes in 150 browser-sized frames
    await client.send_audio(pcm, frame_bytes=256)  # all before the session is ready
    await client.until(action="connected")
    await client.send_audio(pcm, frame_bytes=255)  # odd-sized frames after it
    total = 2 * len(pcm) - (2 * len(pcm)) % 2
    appends = await edge.upstream.until_appended(total, edge.api)
    assert sum(e["audio_bytes"] for e in appends) == total
    assert all(e["audio_bytes"] % 2 == 0 for e in appends)
    assert len(appends) <= (2 * len(pcm)) // 960 + 2  # ~20 ms per append, not per frame
    await client.close()
    await edge.nothing_left()


async def test_audio_makes_the_round_trip_byte_for_byte_in_order(edge):
    """Through an upstream that sends each append straight back: what the client hears is
    exactly what it sent, frames queued before the session was ready included — the fast
    path in (daphne's protocol → session) and out (frames written by the relay)."""
    edge.upstream.echo(True)
    edge.upstream.next_faults(Faults(first_event_delay_ms=300))
    client = edge.client()
    await client.connect(greeting=False)
    sent = os.urandom(2 * 24000)  # one second of noise: any loss or reordering shows
    await client.send_audio(sent[:24000], frame_bytes=321)  # before the session is ready
    await client.until(action="connected")
    await client.send_audio(sent[24000:], frame_bytes=960)
    async with asyncio.timeout(10):
        while len(client.audio) < len(sent):
            await client.next()
    assert bytes(client.audio) == sent
    await client.close()
    await edge.nothing_left()


async def test_barge_in_during_a_reply_stops_it_and_truncates_to_what_was_sent(edge):
    edge.upstream.pace("realtime")
    client = edge.client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "tell me a long story " * 5})
    await client.until(action="audio_start")
    await client.send_audio(wav_pcm("hello_24k.wav")[:48000])  # the user talks over it
    await client.until(action="speech_started")
    done = await client.until(action="response_done")
    truncate = await edge.upstream.wait_for("conversation.item.truncate")
    assert 0 < truncate["audio_end_ms"] <= len(client.audio) // 48
    assert done["status"] in ("cancelled", "completed")
    await client.close()
    await edge.nothing_left()


async def test_interrupt_cancels_the_answer(edge):
    edge.upstream.pace("realtime")
    client = edge.client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "a long answer please " * 5})
    start = await client.until(action="audio_start")
    await client.send_json({"type": "interrupt", "item_id": start["item_id"], "played_ms": 10})
    done = await client.until(action="response_done")
    assert done["status"] == "cancelled" and done["reason"] == "client_cancelled"
    assert (await edge.upstream.wait_for("conversation.item.truncate"))["audio_end_ms"] == 10
    await client.close()
    await edge.nothing_left()


@pytest.mark.parametrize(
    ("case", "code", "close"),
    [
        ("binary frame over the relay's limit", "frame_too_large", 1009),
        ("binary frame over daphne's limit", "frame_too_large", 1009),
        ("origin not allowed", "origin_not_allowed", 1008),
        ("upstream refuses the key", "upstream_auth_failed", 4011),
    ],
)
async def test_endings_reach_the_client_with_their_close_code(edge, case, code, close):
    origin = "http://evil.example" if case == "origin not allowed" else None
    if case == "upstream refuses the key":
        edge.upstream.next_faults(Faults(refuse_status=401))
    client = edge.client(origin=origin)
    await client.connect(greeting=case.startswith("binary"))
    if case == "binary frame over the relay's limit":
        await client.send_bytes(bytes(5000))
    elif case == "binary frame over daphne's limit":
        await client.send_bytes(bytes(DAPHNE_LIMIT + 5000))
    error = await client.until(type="error")
    assert error["code"] == code and error["fatal"] is True and error["message"]
    assert await client.until_closed() == close
    if case != "origin not allowed":  # refused before any upstream connect
        await edge.nothing_left()


async def test_a_client_closing_normally_closes_its_upstream(edge):
    client = edge.client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "a long answer " * 10})
    await client.until(action="audio_start")
    await client.close()
    record = await edge.upstream.closed()
    assert record.closed_by == "client"
    await edge.nothing_left()


# ---- which path served them -------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "path"), [("daphne", "fast"), ("daphne-changed", "asgi")])
async def test_which_path_served_the_sessions_and_what_was_logged(upstream, relays, variant, path):
    served = relays(variant, "realtime")
    client = DaphneClient(served.port)
    await client.connect()
    await client.send_audio(wav_pcm("hello_24k.wav") + SILENCE_1S)
    await client.until(action="speech_started", timeout=30)  # a deadline: slow under load
    await client.close()
    other = "asgi" if path == "fast" else "fast"
    assert served.metric("relay_daphne_connections_total", path=path) >= 1
    assert served.metric("relay_daphne_connections_total", path=other) == 0
    active = 1.0 if path == "fast" else 0.0
    assert served.metric("relay_compat_patch_active", patch="daphne_fastpath") == active
    for patch in ("daphne_close_codes", "daphne_frame_guard", "twisted_eager_writes"):
        assert served.metric("relay_compat_patch_active", patch=patch) == 1.0
    warnings = [line for line in served.output().splitlines() if "compat:" in line]
    if path == "fast":
        assert warnings == []
    else:
        [warning] = warnings  # one, naming the patch, the package and its version
        assert "WARNING" in warning and "daphne_fastpath stays off" in warning
        assert f"daphne {version('daphne')}" in warning and "plain path" in warning
