"""The internals the per-frame speed-ups reach into (realtime.compat.daphne_fastpath, masks,
autobahn): each test names what moved when an upgrade breaks one, and checks that the
speed-up still behaves like the layer it bypasses."""

from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import socket
from pprint import pformat
from types import SimpleNamespace

import pytest

from realtime.compat import autobahn as autobahn_compat
from realtime.compat import daphne_fastpath, masks

# ---- daphne_fastpath --------------------------------------------------------------------------


def test_daphne_still_gives_the_application_a_send_bound_to_its_protocol():
    """daphne_protocol() finds the connection behind ``partial(server.handle_reply, protocol)``."""
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    assert "partial(self.handle_reply, protocol)" in inspect.getsource(Server.create_application)
    assert WebSocketProtocol.muted is False
    source = inspect.getsource(WebSocketProtocol.onMessage)
    for piece in ("self.muted", "self.last_ping = time.time()", "application_queue.put_nowait"):
        assert piece in source, f"daphne's onMessage no longer does {piece!r}"
    from autobahn.websocket.protocol import WebSocketProtocol as Autobahn

    assert callable(Autobahn.sendMessage) and Autobahn.STATE_OPEN == 3
    # The reply frames of our own: autobahn frames and queues the way _send assumes.
    assert Autobahn.SEND_STATE_GROUND == 0
    assert "len(self.send_queue) > 0" in inspect.getsource(Autobahn.sendData)
    send_message = inspect.getsource(Autobahn.sendMessage)
    for piece in ("self._perMessageCompress", "self.autoFragmentSize", "maxMessagePayloadSize"):
        assert piece in send_message, f"autobahn's sendMessage no longer reads {piece}"
    assert "self.maskServerFrames" in inspect.getsource(Autobahn.sendFrame)


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


async def _handle_reply(protocol, message):  # named like daphne's Server.handle_reply
    return None


_handle_reply.__name__ = "handle_reply"


def test_the_protocol_is_found_through_channels_session_wrapper():
    from channels.sessions import InstanceSessionWrapper

    protocol = FakeProtocol()
    send = functools.partial(_handle_reply, protocol)
    assert daphne_fastpath.daphne_protocol(send) is protocol

    wrapper = InstanceSessionWrapper.__new__(InstanceSessionWrapper)
    wrapper.real_send = send  # what InstanceSessionWrapper.__init__ keeps
    assert daphne_fastpath.daphne_protocol(wrapper.send) is protocol
    assert "self.real_send = send" in inspect.getsource(InstanceSessionWrapper.__init__)
    # Anything else (the test communicator, another server): the ASGI path.
    assert daphne_fastpath.daphne_protocol(lambda message: None) is None
    assert daphne_fastpath.daphne_protocol(functools.partial(print, protocol)) is None


@pytest.mark.asyncio
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


@pytest.mark.asyncio
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


def test_eager_writes_reach_the_peer_at_once_and_keep_twisted_s_order():
    """Twisted's tcp.Connection still has the buffers the eager write checks; bytes written
    while Twisted holds data of its own queue behind it."""
    from twisted.internet import reactor, tcp

    left, right = socket.socketpair()
    left.setblocking(False)
    right.settimeout(2)
    try:
        connection = tcp.Connection(left, None, reactor)
        connection.connected = 1
        names = ("_tempDataBuffer", "dataBuffer", "offset", "startWriting", "socket",
                 "_writeDisconnected", "disconnecting")  # fmt: skip
        for name in names:
            assert hasattr(connection, name), f"Twisted's tcp.Connection lost {name}"
        started = []
        connection.startWriting = lambda: started.append(True)  # no reactor loop in this test
        daphne_fastpath.install_eager_writes()
        assert tcp.Connection._relay_eager_writes

        connection.write(b"now")
        assert right.recv(16) == b"now"  # on the socket without a reactor turn
        assert not started and not connection._tempDataBuffer

        connection._tempDataBuffer.append(b"held")  # Twisted has data waiting
        connection._tempDataBufferSize = 4
        connection.write(b"after")
        assert connection._tempDataBuffer == [b"held", b"after"] and started
    finally:
        left.close()
        right.close()


# ---- masks ------------------------------------------------------------------------------------


def test_websockets_still_masks_with_secrets_token_bytes_and_the_buffer_replaces_it():
    from websockets import frames

    source = inspect.getsource(frames.Frame.serialize)
    assert "secrets.token_bytes(4)" in source, "websockets changed how it draws mask keys"
    masks.install_buffered_masks()
    assert frames.secrets._relay_buffered

    frame = frames.Frame(frames.OP_BINARY, b"\x00" * 8)
    wires = {frame.serialize(mask=True) for _ in range(200)}
    assert len(wires) == 200  # a fresh key every frame
    for wire in list(wires)[:5]:
        key, payload = wire[2:6], wire[6:]
        assert payload == key * 2  # zeros XOR key: the key itself


def test_the_buffered_source_hands_out_each_byte_once():
    source = masks.BufferedRandom(chunk=16)
    drawn = b"".join(source.token_bytes(4) for _ in range(8))  # crosses a refill
    assert len(drawn) == 32
    assert len(source.token_bytes(40)) == 40  # larger than a chunk


# ---- autobahn ---------------------------------------------------------------------------------


def test_autobahn_s_settings_dump_is_formatted_only_when_written():
    from autobahn.websocket import protocol

    assert "pformat(configAttrLog)" in inspect.getsource(protocol.WebSocketProtocol._connectionMade)
    autobahn_compat.install_lazy_config_log()
    value = {"b": list(range(30)), "a": 1}
    lazy = protocol.pformat(value)
    assert str(lazy) == pformat(value) and f"{lazy}" == pformat(value)
    assert protocol.pformat(value, width=20) == pformat(value, width=20)

    timings = protocol.Timings()
    timings.track("x")
    assert isinstance(str(timings), str)  # __str__ must return a real string


# ---- sdk quick send ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_quick_send_writes_frames_like_websockets_and_defers_to_it_when_closed():
    """realtime.compat.sdk: text frames written without ``send_context`` arrive whole and in
    order; on a closed connection the same ConnectionClosed as websockets' own send."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    from realtime.compat import sdk

    assert "send_context" in inspect.getsource(
        __import__("websockets.asyncio.connection", fromlist=["Connection"]).Connection.send
    )
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
        assert raw.send.__qualname__.startswith("_quick_send")
        for text in ("one", "twó", "x" * 70_000):
            await raw.send(text)
        async with asyncio.timeout(5):
            await done.wait()
        assert got == ["one", "twó", "x" * 70_000]
        await ws.close()
        with pytest.raises(ConnectionClosed):
            await raw.send("late")


def test_the_asyncio_reactor_still_registers_readers_as_the_direct_read_replaces():
    """realtime.compat.daphne_fastpath._read_directly: Twisted registers each reader with the
    event loop as ``callWithLogger(reader, self._readOrWrite, reader, True)``."""
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    source = inspect.getsource(AsyncioSelectorReactor.addReader)
    assert "self._readOrWrite, reader, True" in source and "self._readers[reader] = fd" in source
    assert "_asyncioEventloop" in inspect.getsource(AsyncioSelectorReactor.__init__)
