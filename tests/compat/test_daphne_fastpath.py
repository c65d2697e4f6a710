"""The fast path of daphne's WebSocket connections (``compat/daphne_fastpath.py``) by what it
does, on in-memory protocols: audio taken from daphne's protocol straight to the session only
while nothing is queued ahead of it, replies written as the frames a WebSocket server sends
(or through autobahn whenever it would frame them differently), and the patch left off, with
one warning, when daphne's ``onMessage`` changed. The same path through a real daphne:
tests/compat/daphne/."""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from types import SimpleNamespace

import pytest

from realtime.compat import daphne_fastpath, patching
from realtime.compat.probes import MemoryConnection
from tests.compat.conftest import fresh, warnings_of

# ---- fast path --------------------------------------------------------------------------------


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


class FakeProtocol:
    """The attributes of daphne's WebSocketProtocol the fast path uses."""

    STATE_OPEN = 3
    SEND_STATE_GROUND = 0

    def __init__(self, **autobahn: object) -> None:
        self.application_queue: asyncio.Queue = asyncio.Queue()
        self.muted = False
        self.state = self.STATE_OPEN
        self.last_ping = 0.0
        self.sent: list[tuple[bytes, bool]] = []
        self.transport = FakeTransport()  # not Twisted's: no eager writes, no direct reads
        self.factory = SimpleNamespace(isServer=True)
        self._perMessageCompress = None
        self.maskServerFrames = False
        self.send_state = self.SEND_STATE_GROUND
        self.send_queue: collections.deque = collections.deque()
        self.autoFragmentSize = 65536
        self.maxMessagePayloadSize = 0
        self.__dict__.update(autobahn)

    def onMessage(self, payload: bytes, is_binary: bool) -> None:
        if self.muted:
            return
        key = "bytes" if is_binary else "text"
        self.application_queue.put_nowait({"type": "websocket.receive", key: payload})

    def sendMessage(self, payload: bytes, is_binary: bool) -> None:
        self.sent.append((payload, is_binary))


@pytest.mark.parametrize("stack", ["bare", "channels session middleware"])
async def test_daphne_gives_the_application_a_send_the_fast_path_finds_its_protocol_behind(stack):
    """A real daphne Server creating an application instance for a connection, the
    application bare or behind channels' session middleware (as the relay's is). Anything
    else (the test communicator's send): the ASGI path."""
    from channels.sessions import CookieMiddleware, SessionMiddleware
    from daphne.server import Server

    sends = []

    async def capture(scope, receive, send):
        sends.append(send)

    application = capture if stack == "bare" else CookieMiddleware(SessionMiddleware(capture))
    server = Server(application=application, endpoints=["tcp:port=0"], signal_handlers=False)
    server.connections = {}
    connection = MemoryConnection()
    server.protocol_connected(connection.protocol)
    server.create_application(connection.protocol, {"type": "websocket", "headers": []})
    await server.connections[connection.protocol]["application_instance"]
    [send] = sends
    assert daphne_fastpath.daphne_protocol(send) is connection.protocol
    assert daphne_fastpath.daphne_protocol(lambda message: None) is None
    assert daphne_fastpath.daphne_protocol(functools.partial(print, connection.protocol)) is None
    connection.close()


async def test_attach_takes_the_fast_path_only_while_its_patch_is_on(redecide):
    connection = MemoryConnection()
    send = functools.partial(_handle_reply, connection.protocol)
    fresh(redecide, daphne_fastpath.FASTPATH)
    assert daphne_fastpath.attach(send, lambda data: None, 64) is None  # not decided: off
    assert patching.install(daphne_fastpath.FASTPATH)
    assert isinstance(
        daphne_fastpath.attach(send, lambda data: None, 64), daphne_fastpath.FastFrames
    )
    connection.close()


async def _handle_reply(protocol, message):  # named like daphne's Server.handle_reply
    return None


_handle_reply.__name__ = "handle_reply"


def test_a_changed_daphne_on_message_leaves_the_fast_path_off(redecide, monkeypatch, caplog):
    """A daphne whose onMessage does more than the fast path copies (here: it tracks the
    client's liveness in a new attribute) would time out clients that only send audio on
    the fast path: the probe sees the difference and the patch stays off."""
    import time

    from daphne.ws_protocol import WebSocketProtocol

    patch = fresh(redecide, daphne_fastpath.FASTPATH)  # off first: a test before may have it
    original = WebSocketProtocol.onMessage

    def on_message(self, payload, isBinary):
        self.last_seen = time.time()
        original(self, payload, isBinary)

    monkeypatch.setattr(WebSocketProtocol, "onMessage", on_message)
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        assert not patching.install(patch)
    [warning] = warnings_of(caplog)
    assert "daphne_fastpath" in warning and "daphne 4." in warning and "last_seen" in warning


async def test_audio_takes_the_fast_path_only_while_nothing_is_queued_ahead_of_it():
    protocol = FakeProtocol()
    heard: list[bytes] = []
    fast = daphne_fastpath.FastFrames(protocol, heard.append, max_bytes=8)

    protocol.onMessage(b"\x01\x02", True)
    assert heard == [b"\x01\x02"] and protocol.application_queue.empty()
    assert protocol.last_ping > 0  # daphne's ping timeout still sees the client alive

    protocol.onMessage(b'{"type":"x"}', False)  # text: ASGI
    protocol.onMessage(b"\x03", True)  # queued behind the text: ASGI too, order kept
    protocol.onMessage(b"\x00" * 9, True)  # over the limit: ASGI reports frame_too_large
    queued = [protocol.application_queue.get_nowait() for _ in range(3)]
    assert [m.get("bytes", m.get("text")) for m in queued] == [
        b'{"type":"x"}',
        b"\x03",
        b"\x00" * 9,
    ]
    assert heard == [b"\x01\x02"]

    protocol.muted = True  # closing: daphne drops frames, and so does the fast path
    protocol.onMessage(b"\x04", True)
    assert heard == [b"\x01\x02"] and protocol.application_queue.empty()

    assert fast.send_text("hé") and fast.send_bytes(b"\x05")
    assert protocol.transport.written == [b"\x81\x03h\xc3\xa9", b"\x82\x01\x05"]
    protocol.state = 4  # closing
    assert not fast.send_text("late") and not fast.send_bytes(b"late")
    assert len(protocol.transport.written) == 2 and protocol.sent == []


@pytest.mark.parametrize("size", [0, 125, 126, 960, 65535, 65536])
def test_reply_frames_are_the_bytes_a_websocket_server_sends(size):
    """Checked against websockets' own framing (an independent implementation)."""
    from websockets.frames import OP_BINARY, OP_TEXT, Frame

    protocol = FakeProtocol()
    fast = daphne_fastpath.FastFrames(protocol, lambda data: None, max_bytes=8)
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    fast.send_bytes(payload)
    fast.send_text("é" * (size // 2))
    assert protocol.transport.written == [
        Frame(OP_BINARY, payload).serialize(mask=False),
        Frame(OP_TEXT, ("é" * (size // 2)).encode()).serialize(mask=False),
    ]


@pytest.mark.parametrize(
    "autobahn",
    [
        {"_perMessageCompress": object()},  # permessage-deflate negotiated
        {"send_queue": collections.deque([(b"x", True)])},  # autobahn has bytes waiting
        {"send_state": 1},  # autobahn is mid-message
        {"autoFragmentSize": 4},  # the reply needs fragments
        {"maxMessagePayloadSize": 4},  # over autobahn's limit: it raises, as it should
        {"maskServerFrames": True},
    ],
)
def test_replies_go_through_autobahn_whenever_it_would_frame_them_differently(autobahn):
    protocol = FakeProtocol(**autobahn)
    fast = daphne_fastpath.FastFrames(protocol, lambda data: None, max_bytes=8)
    assert fast.send_bytes(b"\x00" * 8)
    assert protocol.sent == [(b"\x00" * 8, True)] and protocol.transport.written == []


async def test_an_error_in_the_session_sends_the_frame_down_the_asgi_path():
    protocol = FakeProtocol()

    def broken(data: bytes) -> None:
        raise RuntimeError("boom")

    daphne_fastpath.FastFrames(protocol, broken, max_bytes=8)
    protocol.onMessage(b"\x01", True)
    assert protocol.application_queue.get_nowait() == {
        "type": "websocket.receive",
        "bytes": b"\x01",
    }
