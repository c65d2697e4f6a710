"""The daphne, autobahn and Twisted patches by what they do (on in-memory daphne connections,
socket pairs and a fake clock), and each one left off, with one warning, when what it
patches changed. The same paths through a real daphne: tests/compat/daphne/."""

from __future__ import annotations

import logging
import socket
from pprint import pformat
from types import SimpleNamespace

import pytest

from realtime.compat import autobahn_dump as autobahn_compat
from realtime.compat import daphne_close_codes as daphne_compat
from realtime.compat import daphne_fastpath, daphne_guards, patching
from realtime.compat.probes import MemoryConnection, client_frame
from tests.compat.conftest import fresh, warnings_of

# ---- close codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "wire"), [(1008, b"\x03\xf0"), (1009, b"\x03\xf1"),
                                            (1011, b"\x03\xf3"), (1012, b"\x03\xf4")])  # fmt: skip
def test_daphne_sends_the_server_close_codes(redecide, code, wire):
    assert patching.install(fresh(redecide, daphne_compat.CLOSE_CODES))
    connection = MemoryConnection()
    connection.protocol.handle_reply({"type": "websocket.close", "code": code})
    assert connection.written() == b"\x88\x02" + wire
    connection.close()


def test_without_the_close_code_patch_daphne_refuses_them(redecide, monkeypatch, caplog):
    """autobahn's sendCloseFrame changed (simulated): the patch stays off, daphne raises on
    1009 as it always did (the client then sees 1006), and 4000-4999 still work."""
    from daphne.ws_protocol import WebSocketProtocol

    patch = fresh(redecide, daphne_compat.CLOSE_CODES)  # off first: a test before may have it
    original = WebSocketProtocol.sendCloseFrame
    monkeypatch.setattr(
        WebSocketProtocol, "sendCloseFrame", lambda self, close_code=None, **kw: original(self)
    )
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        assert not patching.install(patch)
    [warning] = warnings_of(caplog)
    assert "daphne_close_codes" in warning and "autobahn 26." in warning
    monkeypatch.undo()
    connection = MemoryConnection()
    with pytest.raises(Exception, match="invalid close code 1009"):
        connection.protocol.handle_reply({"type": "websocket.close", "code": 1009})
    connection.protocol.handle_reply({"type": "websocket.close", "code": 4001})
    assert connection.written() == b"\x88\x02\x0f\xa1"
    connection.close()


# ---- frame guard ------------------------------------------------------------------------------


def test_messages_reach_the_application_with_or_without_message_listeners(redecide):
    """The guard skips autobahn's "message" signal only when nobody listens to it."""
    assert patching.install(fresh(redecide, daphne_guards.FRAME_GUARD))
    connection = MemoryConnection()
    connection.feed(b"\x01\x02" * 10)
    connection.feed("héllo".encode(), binary=False)
    assert connection.received() == [
        {"type": "websocket.receive", "bytes": b"\x01\x02" * 10},
        {"type": "websocket.receive", "text": "héllo"},
    ]
    heard = []
    connection.protocol.on("message", lambda payload, is_binary: heard.append(payload))
    connection.feed(b"abc")
    assert connection.received() == [{"type": "websocket.receive", "bytes": b"abc"}]
    assert heard == [b"abc"]  # a listener gets the signal as autobahn fires it
    assert connection.protocol.message_data is None
    connection.close()


@pytest.mark.parametrize("binary", [True, False])
def test_an_oversized_message_is_discarded_as_it_streams_and_reported(redecide, binary):
    assert patching.install(fresh(redecide, daphne_guards.FRAME_GUARD))
    connection = MemoryConnection(maxMessagePayloadSize=1000, maxFramePayloadSize=1000)
    frame = client_frame(b"x" * 5000, 2 if binary else 1)
    for start in range(0, len(frame), 512):  # as it arrives: nothing of it is kept
        connection.feed_raw(frame[start : start + 512])
        assert not connection.protocol.message_data and not connection.protocol.frame_data
    assert connection.received() == [
        {"type": "websocket.receive", "relay_frame_too_large": 5000, "relay_binary": binary}
    ]
    assert not connection.transport.disconnecting and connection.written() == b""
    connection.close()


def test_an_autobahn_with_another_size_hook_leaves_the_frame_guard_off(
    redecide, monkeypatch, caplog
):
    """Off, autobahn's own check drops such a connection (the client sees 1006)."""
    from daphne.ws_protocol import WebSocketProtocol

    patch = fresh(redecide, daphne_guards.FRAME_GUARD)  # off first: a test before may have it
    monkeypatch.setattr(WebSocketProtocol, "_max_message_size_exceeded", lambda self, why: None)
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        assert not patching.install(patch)
    [warning] = warnings_of(caplog)
    assert "daphne_frame_guard" in warning and "autobahn 26." in warning
    assert "_max_message_size_exceeded" in warning


# ---- request deadlines ------------------------------------------------------------------------


def test_a_kept_alive_connection_gets_fresh_deadlines_after_each_response(redecide):
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.web.http import HTTPChannel

    patch = fresh(redecide, daphne_guards.REQUEST_DEADLINES)
    assert daphne_guards.install_request_deadlines(first_message=5, handshake=10)
    assert patching.active(patch.name)
    clock, transport, channel = Clock(), StringTransport(), HTTPChannel()
    channel.callLater = clock.callLater

    def respond(request):
        request.setResponseCode(204)
        request.finish()

    channel.requestFactory = lambda *args, **kw: _Responding(respond, *args, **kw)
    channel.makeConnection(transport)
    clock.advance(4)
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # answered at once
    assert transport.value().startswith(b"HTTP/1.1 204")
    clock.advance(4.5)  # the first deadline counts again from the response
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting  # silent for 5 s after its response: closed
    channel.connectionLost(None)


class _Responding:
    def __new__(cls, respond, *args, **kwargs):
        from twisted.web.http import Request

        class Answering(Request):
            def process(self):
                respond(self)

        return Answering(*args, **kwargs)


# ---- eager writes, direct reads ---------------------------------------------------------------


def test_eager_writes_reach_the_peer_at_once_and_keep_twisted_s_order(redecide):
    from twisted.internet import tcp

    assert patching.install(fresh(redecide, daphne_fastpath.EAGER_WRITES))
    left, right = socket.socketpair()
    left.setblocking(False)
    right.settimeout(2)
    try:
        connection = tcp.Connection(left, None, SimpleNamespace())
        connection.connected = 1
        started = []
        connection.startWriting = lambda: started.append(True)  # no reactor loop in this test
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


def test_without_eager_writes_twisted_buffers_every_write(redecide, monkeypatch, caplog):
    from twisted.internet import tcp

    patch = fresh(redecide, daphne_fastpath.EAGER_WRITES)  # off first: a test before may have it
    monkeypatch.setattr(tcp.Connection, "write", lambda self: None)  # another signature
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        assert not patching.install(patch)
    [warning] = warnings_of(caplog)
    assert "twisted_eager_writes" in warning and "twisted 26." in warning


def test_direct_reads_are_on_under_the_asyncio_reactor(redecide):
    assert patching.install(fresh(redecide, daphne_fastpath.DIRECT_READS))


# ---- autobahn ---------------------------------------------------------------------------------


def test_autobahn_s_settings_dump_is_formatted_only_when_written(redecide):
    from autobahn.websocket import protocol

    assert patching.install(fresh(redecide, autobahn_compat.LAZY_CONFIG_LOG))
    value = {"b": list(range(30)), "a": 1}
    lazy = protocol.pformat(value)
    assert isinstance(lazy, autobahn_compat.LazyFormat)
    assert str(lazy) == pformat(value) and f"{lazy}" == pformat(value)
    assert protocol.pformat(value, width=20) == pformat(value, width=20)
    timings = protocol.Timings()
    timings.track("x")
    assert isinstance(str(timings), str)  # __str__ must return a real string
    patching.reset(autobahn_compat.LAZY_CONFIG_LOG.name)
    assert protocol.pformat is pformat
