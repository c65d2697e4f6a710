"""Each reach into framework/SDK internals (realtime/compat) fails loudly here when it breaks."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time

import pytest
from asgiref.sync import sync_to_async

from realtime.compat import cancellation, sdk
from realtime.compat import daphne as daphne_compat
from realtime.compat.consumer import DirectWebsocketConsumer
from realtime.compat.websockets import LOGGER, HandshakeHeaderFilter


def test_daphne_still_has_the_close_path_the_close_code_patch_replaces():
    """realtime.compat.daphne: daphne's serverClose and autobahn's sendCloseFrame must exist."""
    from daphne.ws_protocol import WebSocketProtocol

    daphne_compat.install_close_codes()
    assert getattr(WebSocketProtocol, "_relay_close_codes", False), "close-code patch not applied"
    assert callable(getattr(WebSocketProtocol, "sendCloseFrame", None)), (
        "autobahn dropped sendCloseFrame: realtime.compat.daphne can no longer send 1008-1012"
    )
    params = inspect.signature(WebSocketProtocol.sendCloseFrame).parameters
    assert {"code", "isReply"} <= set(params), "sendCloseFrame changed its signature"


def test_channels_still_dispatches_with_the_per_message_costs_the_consumer_base_avoids():
    """realtime.compat.consumer replaces AsyncConsumer.__call__/dispatch: if channels drops
    await_many_dispatch or the per-message aclose_old_connections, revisit the base."""
    from channels.consumer import AsyncConsumer

    call_source = inspect.getsource(AsyncConsumer.__call__)
    dispatch_source = inspect.getsource(AsyncConsumer.dispatch)
    assert "await_many_dispatch" in call_source, "channels changed AsyncConsumer.__call__"
    assert "aclose_old_connections" in dispatch_source, "channels changed AsyncConsumer.dispatch"
    # What the base relies on from AsyncWebsocketConsumer.
    for name in ("accept", "close", "send", "websocket_receive", "groups"):
        assert hasattr(DirectWebsocketConsumer, name), f"AsyncWebsocketConsumer lost {name}"


@pytest.mark.parametrize(
    "connection_class",
    [
        "openai.resources.realtime.realtime:AsyncRealtimeConnection",
        "openai.resources.live.live:AsyncLiveConnection",
    ],
)
def test_sdk_connections_still_keep_their_websocket_in_connection(connection_class):
    """realtime.compat.sdk sends on ``_connection`` directly; the public API is the fallback."""
    import importlib

    module, _, name = connection_class.partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert "_connection" in getattr(cls, "__annotations__", {}) or any(
        "_connection" in getattr(base, "__annotations__", {}) for base in cls.__mro__
    ), f"{connection_class} no longer has _connection: the relay would use the slow fallback"
    assert callable(getattr(cls, "send_raw", None)) and callable(getattr(cls, "recv_bytes", None))


async def test_sdk_raw_socket_goes_direct_and_falls_back_to_the_public_api():
    sent: list[str] = []

    class Ws:
        close_code = 1000

        async def send(self, frame: str) -> None:
            sent.append(frame)

        async def recv(self, decode: bool | None = None) -> bytes:
            assert decode is False
            return b"{}"

    class Direct:
        _connection = Ws()

    class Public:
        async def send_raw(self, frame: str) -> None:
            sent.append("public:" + frame)

        async def recv_bytes(self) -> bytes:
            return b"[]"

    raw = sdk.raw_socket(Direct())
    assert raw.direct
    await raw.send("a")
    assert await raw.recv() == b"{}"
    fallback = sdk.raw_socket(Public())
    assert not fallback.direct
    await fallback.send("b")
    assert await fallback.recv() == b"[]"
    assert sent == ["a", "public:b"]
    assert sdk.close_code(Direct()) == 1000 and sdk.close_code(Public()) is None


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


def test_websockets_handshake_dump_is_redacted_on_its_logger():
    logger = logging.getLogger(LOGGER)
    assert any(isinstance(f, HandshakeHeaderFilter) for f in logger.filters)
    record = logging.LogRecord(
        LOGGER, logging.DEBUG, __file__, 1, "> %s", ("api-key: s3cr3t",), None
    )
    HandshakeHeaderFilter().filter(record)
    assert record.getMessage() == "> api-key: [redacted]"
