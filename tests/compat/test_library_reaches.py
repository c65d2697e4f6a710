"""The reaches that are not daphne's: the openai SDK's websocket, websockets' mask keys and
DEBUG handshake dump, channels' consumer dispatch, CPython's and asgiref's cancellation —
each by what it does, and the SDK one falling back when the SDK changed."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import pytest
from asgiref.sync import sync_to_async

from realtime.compat import cancellation, masks, patching, sdk
from realtime.compat.websockets_redaction import LOGGER, HandshakeHeaderFilter
from tests.compat.conftest import fresh

# ---- openai SDK -------------------------------------------------------------------------------


class FakeWebsocket:
    close_code = 1000

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, frame: str) -> None:
        self.sent.append(frame)

    async def recv(self, decode: bool | None = None) -> bytes:
        assert decode is False
        return b"{}"


@pytest.mark.parametrize(
    "connection_class",
    [
        "openai.resources.realtime.realtime:AsyncRealtimeConnection",
        "openai.resources.live.live:AsyncLiveConnection",
    ],
)
async def test_the_sdk_connections_hand_their_websocket_to_the_raw_socket(connection_class):
    """Both SDK connection classes, built on a websocket, give the relay that websocket."""
    import importlib

    module, _, name = connection_class.partition(":")
    cls = getattr(importlib.import_module(module), name)
    ws = FakeWebsocket()
    raw = sdk.raw_socket(cls(ws))
    assert raw.direct, f"{connection_class}: the relay would use the SDK's slower send_raw"
    await raw.send("a")
    assert ws.sent == ["a"] and await raw.recv() == b"{}"
    assert patching.active(sdk.RAW_SOCKET.name)


async def test_an_sdk_connection_without_its_websocket_uses_the_public_api(redecide, caplog):
    sent: list[str] = []

    class Public:
        async def send_raw(self, frame: str) -> None:
            sent.append("public:" + frame)

        async def recv_bytes(self) -> bytes:
            return b"[]"

    fresh(redecide, sdk.RAW_SOCKET)
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        for _ in range(3):
            fallback = sdk.raw_socket(Public())
    assert not fallback.direct
    await fallback.send("b")
    assert await fallback.recv() == b"[]" and sent == ["public:b"]
    [warning] = [r.getMessage() for r in caplog.records]
    assert "openai_raw_socket" in warning and "openai 3." in warning
    assert not patching.active(sdk.RAW_SOCKET.name)
    assert sdk.close_code(Public()) is None


async def test_the_quick_send_writes_frames_like_websockets_and_defers_to_it_when_closed():
    """Text frames written without ``send_context`` arrive whole and in order; on a closed
    connection the same ConnectionClosed as websockets' own send."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    got: list[str] = []
    done = asyncio.Event()

    async def handler(ws):
        async for message in ws:
            got.append(message)
            if len(got) == 3:
                done.set()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await connect(f"ws://127.0.0.1:{port}")
        connection = type("Connection", (), {"_connection": ws})()  # as the SDK's holds it
        raw = sdk.raw_socket(connection)
        assert raw.write_now("one")  # written at once: nothing stands in the way
        for text in ("twó", "x" * 70_000):
            await raw.send(text)
        async with asyncio.timeout(5):
            await done.wait()
        assert got == ["one", "twó", "x" * 70_000]
        await ws.close()
        assert not raw.write_now("late")
        with pytest.raises(ConnectionClosed):
            await raw.send("late")


# ---- websockets: mask keys, handshake dump ----------------------------------------------------


def test_upstream_frames_take_a_fresh_mask_key_from_the_buffer(redecide):
    from websockets import frames

    assert patching.install(fresh(redecide, masks.BUFFERED_MASKS))
    frame = frames.Frame(frames.OP_BINARY, b"\x00" * 8)
    wires = {frame.serialize(mask=True) for _ in range(200)}
    assert len(wires) == 200  # a fresh key every frame
    for wire in list(wires)[:5]:
        key, payload = wire[2:6], wire[6:]
        assert payload == key * 2  # zeros XOR key: the key itself
    patching.reset(masks.BUFFERED_MASKS.name)
    import secrets

    assert frames.secrets is secrets


def test_the_buffered_source_hands_out_each_byte_once():
    source = masks.BufferedRandom(chunk=16)
    drawn = b"".join(source.token_bytes(4) for _ in range(8))  # crosses a refill
    assert len(drawn) == 32
    assert len(source.token_bytes(40)) == 40  # larger than a chunk


async def test_keys_never_reach_a_log_record_of_a_real_handshake_at_debug(caplog):
    """Building upstream clients (every runtime does) installs the filter; a websockets
    client handshake logged at DEBUG then shows the header names, never the key."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    from realtime.upstream.clients import UpstreamClients

    UpstreamClients()
    assert any(isinstance(f, HandshakeHeaderFilter) for f in logging.getLogger(LOGGER).filters)
    secret = "sk-test-" + "9" * 30

    async def handler(ws):
        await ws.wait_closed()

    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            headers = {"Authorization": f"Bearer {secret}", "api-key": secret}
            async with connect(f"ws://127.0.0.1:{port}", additional_headers=headers):
                pass
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert any(line.startswith("> Authorization: [redacted]") for line in lines), lines
    assert any(line.startswith("> api-key: [redacted]") for line in lines)
    assert not any(secret in line for line in lines)


# ---- channels: the consumer base --------------------------------------------------------------


async def test_the_consumer_base_dispatches_each_message_without_a_database_hop(monkeypatch):
    """Channels' stock dispatch awaits aclose_old_connections (a hop to the database
    thread) before every handler; the relay's base dispatches directly, in order, and
    cleans up however the connection ends."""
    import channels.consumer
    from channels.testing import WebsocketCommunicator

    from realtime.compat.consumer import DirectWebsocketConsumer

    hops = []
    real = channels.consumer.aclose_old_connections

    async def counted():
        hops.append(True)
        await real()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)
    cleaned = []

    class Echo(DirectWebsocketConsumer):
        async def connect(self):
            await self.accept()

        async def receive(self, text_data=None, bytes_data=None):
            if text_data == "boom":
                raise RuntimeError("boom")
            await self.send(text_data=f"echo {text_data}")

        async def cleanup(self):
            cleaned.append(True)

    ws = WebsocketCommunicator(Echo.as_asgi(), "/")
    assert (await ws.connect())[0]
    for n in range(20):
        await ws.send_to(text_data=str(n))
    assert [await ws.receive_from() for _ in range(20)] == [f"echo {n}" for n in range(20)]
    assert hops == []
    await ws.send_to(text_data="boom")  # a handler that raises ends the connection, cleaned
    await ws.wait(timeout=3)
    assert cleaned == [True]


# ---- cancellation -----------------------------------------------------------------------------


async def test_asgiref_propagates_the_cancellation_of_a_thread_call():
    """Checked fact behind realtime.compat.cancellation: asgiref 3.13 raises it itself."""

    def slow() -> str:
        time.sleep(0.2)
        return "done"

    task = asyncio.create_task(sync_to_async(slow, thread_sensitive=False)())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wait_for_swallows_a_late_cancellation_on_3_11_and_the_guard_restores_it():
    """realtime.compat.cancellation: on CPython 3.11 wait_for returns instead of raising when
    the cancellation meets the inner result; fixed in 3.12 (then this guard can go)."""
    event = asyncio.Event()

    async def wait(guarded: bool) -> str:
        await asyncio.wait_for(event.wait(), timeout=10)
        if guarded:
            cancellation.raise_if_cancelling()
        return "returned"

    async def outcome(guarded: bool) -> str:
        event.clear()
        task = asyncio.create_task(wait(guarded))
        await asyncio.sleep(0)
        event.set()
        task.cancel()
        try:
            return await task
        except asyncio.CancelledError:
            return "cancelled"

    expected = "returned" if sys.version_info < (3, 12) else "cancelled"
    assert await outcome(guarded=False) == expected, "wait_for's cancellation behaviour changed"
    assert await outcome(guarded=True) == "cancelled"
