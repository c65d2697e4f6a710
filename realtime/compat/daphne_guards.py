"""Guards daphne lacks: oversized WebSocket messages, slow and silent HTTP clients.

**Oversized messages** (``FRAME_GUARD``). autobahn checks ``maxMessagePayloadSize`` when a
frame *begins* (``onMessageFrameBegin``, before its payload is read) and then drops the TCP
connection (``failByDrop``): the client sees a bare 1006 and no reason. Here the check instead
discards the rest of that message as it streams in (nothing of it is kept, whatever its size)
and hands the application a ``websocket.receive`` with ``relay_frame_too_large`` (the declared
size) and ``relay_binary``; the consumer ends the session as for any frame over its limit:
``frame_too_large`` and 1009. A client that keeps sending after the close frame is cut by
autobahn's close-handshake timeout. Checked at install: the hooks' signatures, then a probe
sends an in-memory daphne connection a frame over its limit and sees the message above, the
connection still open and nothing buffered. Off: autobahn's own drop (1006).

**Slow and silent HTTP clients** (``REQUEST_DEADLINES``, installed by ``serve``). Twisted's only
request timeout is an inactivity timer (60 s) that every byte resets: a client that trickles a
header line every few seconds (slowloris) holds its socket forever. Two deadlines per
connection, counted from the moment it is ready for a request (accepted, or its previous
response sent): the first byte within ``first_message`` seconds (else the socket is closed)
and the whole request head, WebSocket upgrade included, within ``handshake`` seconds (else
``408 Request Timeout`` and close). They follow the life of Twisted's own timer, on the same
clock (the channel's ``callLater``): off once a head is complete (an upgraded WebSocket is
never touched again), on again after a response on a kept-alive connection. Checked at
install: ``HTTPChannel``'s steps, then a probe on a fake clock sees a silent client closed, a
slow head answered 408 and a whole head left alone. Off: Twisted's idle timer only.

Written against daphne 4.2, autobahn 26.10 and Twisted 26.10.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from realtime.compat.patching import (
    Patch,
    Replacer,
    expect,
    expect_attributes,
    expect_parameters,
    install,
    served_by_daphne,
)

if TYPE_CHECKING:
    from realtime.kernel.config import RelayConfig
    from realtime.kernel.endings import Ending

TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 41\r\n\r\nThe request head did not arrive in time.\n"
)


# ---------------------------------------------------------------------------------------------
# Oversized WebSocket messages
# ---------------------------------------------------------------------------------------------


def oversize_ending(message: dict[str, Any], config: RelayConfig) -> Ending:
    """The ending for a message the guard discarded (the consumer's own wording)."""
    from realtime.kernel import endings

    size = int(message["relay_frame_too_large"])
    if message.get("relay_binary"):
        return endings.FRAME_TOO_LARGE.because(
            f"binary frame of {size} bytes exceeds the limit of {config.max_binary_bytes} bytes"
        )
    return endings.FRAME_TOO_LARGE.because(
        f"text frame of {size} bytes exceeds the limit of {config.max_text_bytes} bytes"
    )


_HOOKS = ("onMessageFrameData", "onMessageFrameEnd", "onMessageEnd")


def _check_frame_guard() -> None:
    from daphne.ws_protocol import WebSocketProtocol

    expect_parameters(
        WebSocketProtocol._max_message_size_exceeded,
        ("self", "msg_size", "max_msg_size", "reason"),
        "autobahn WebSocketProtocol._max_message_size_exceeded",
        "autobahn",
    )
    expect_parameters(
        WebSocketProtocol.onMessageFrameData, ("self", "payload"), "onMessageFrameData", "autobahn"
    )
    for name in ("onMessageFrameEnd", "onMessageEnd"):
        expect_parameters(getattr(WebSocketProtocol, name, None), ("self",), name, "autobahn")
    expect_attributes(WebSocketProtocol, ("muted", "sendCloseFrame"), "daphne WebSocketProtocol")


def _apply_frame_guard(replace: Replacer) -> None:
    from daphne.ws_protocol import WebSocketProtocol

    frame_data = WebSocketProtocol.onMessageFrameData
    frame_end = WebSocketProtocol.onMessageFrameEnd
    message_end = WebSocketProtocol.onMessageEnd

    def max_message_size_exceeded(self: Any, size: int, limit: int, reason: str) -> None:
        if getattr(self, "_relay_oversize", False):
            return
        self._relay_oversize = True  # this message, and anything after it, is discarded
        self.utf8validateIncomingCurrentMessage = False  # bytes we throw away need no check
        self.message_data = []
        self.frame_data = []
        queue = getattr(self, "application_queue", None)
        if queue is None or self.muted:
            self.sendCloseFrame(code=1009, isReply=False)
            return
        queue.put_nowait(
            {
                "type": "websocket.receive",
                "relay_frame_too_large": size,
                "relay_binary": bool(self.message_is_binary),
            }
        )

    def on_frame_data(self: Any, payload: bytes) -> None:
        if not getattr(self, "_relay_oversize", False):
            frame_data(self, payload)

    def on_frame_end(self: Any) -> None:
        if getattr(self, "_relay_oversize", False):
            self.frame_data = None
            return
        frame_end(self)

    def on_message_end(self: Any) -> None:
        if getattr(self, "_relay_oversize", False):
            self.message_data = []
            return
        if self._listeners is None and self._parent is None and not self.failedByMe:
            if not self.trackedTimings:
                # autobahn's onMessageEnd without its "message" signal, which nobody listens
                # to under daphne: fired, it builds a Deferred and its callbacks per message
                # (≈ 6 % of a worker's CPU streaming 100 sessions; docs/benchmark.md).
                self._onMessage(b"".join(self.message_data), self.message_is_binary)
                self.message_data = None
                return
        message_end(self)

    replace(WebSocketProtocol, "_max_message_size_exceeded", max_message_size_exceeded)
    replace(WebSocketProtocol, "onMessageFrameData", on_frame_data)
    replace(WebSocketProtocol, "onMessageFrameEnd", on_frame_end)
    replace(WebSocketProtocol, "onMessageEnd", on_message_end)


def _probe_frame_guard() -> None:
    from realtime.compat.probes import MemoryConnection, client_frame

    connection = MemoryConnection(maxMessagePayloadSize=64, maxFramePayloadSize=64)
    try:
        frame = client_frame(bytes(200), 2)
        connection.feed_raw(frame[:60])  # the header and the start of the payload
        expect(
            connection.received()
            == [{"type": "websocket.receive", "relay_frame_too_large": 200, "relay_binary": True}],
            "a frame over the limit did not reach the application as relay_frame_too_large",
            "autobahn",
        )
        connection.feed_raw(frame[60:])
        expect(connection.received() == [], "the discarded message reached the application")
        expect(not connection.transport.disconnecting, "autobahn dropped the connection")
        expect(connection.written() == b"", "autobahn answered the oversized frame itself")
    finally:
        connection.close()


FRAME_GUARD = Patch(
    name="daphne_frame_guard",
    packages=("autobahn", "daphne"),
    targets=(
        "autobahn WebSocketProtocol._max_message_size_exceeded",
        *(f"autobahn WebSocketProtocol.{hook}" for hook in _HOOKS),
    ),
    check=_check_frame_guard,
    apply=_apply_frame_guard,
    probe=_probe_frame_guard,
    needed=served_by_daphne,
)


# ---------------------------------------------------------------------------------------------
# Request deadlines
# ---------------------------------------------------------------------------------------------

_STEPS = ("connectionMade", "dataReceived", "allHeadersReceived", "requestDone", "connectionLost")
_settings = {"first": 0.0, "head": 0.0}


class _Deadlines:
    """The two timers of one HTTP connection."""

    __slots__ = ("first", "head")

    def __init__(self) -> None:
        self.first: Any = None
        self.head: Any = None

    def cancel_first(self) -> None:
        if self.first is not None and self.first.active():
            self.first.cancel()
        self.first = None

    def cancel(self) -> None:
        self.cancel_first()
        if self.head is not None and self.head.active():
            self.head.cancel()
        self.head = None


def _check_deadlines() -> None:
    from twisted.web.http import HTTPChannel

    expect_parameters(HTTPChannel.dataReceived, ("self", "data"), "HTTPChannel.dataReceived")
    expect_parameters(HTTPChannel.requestDone, ("self", "request"), "HTTPChannel.requestDone")
    expect_parameters(HTTPChannel.connectionLost, ("self", "reason"), "HTTPChannel.connectionLost")
    for name in ("connectionMade", "allHeadersReceived"):
        expect_parameters(getattr(HTTPChannel, name, None), ("self",), f"HTTPChannel.{name}")
    expect_attributes(HTTPChannel(), ("persistent", "callLater", "transport"), "HTTPChannel")


def _apply_deadlines(replace: Replacer) -> None:
    from twisted.web.http import HTTPChannel

    originals = {name: getattr(HTTPChannel, name) for name in _STEPS}

    def expire(channel: Any, silent: bool) -> None:
        deadlines(channel).cancel()
        transport = channel.transport
        if transport is None:
            return
        if not silent:
            transport.write(TIMEOUT_RESPONSE)
        transport.loseConnection()
        # A client that reads nothing would hold the socket until the 408 is flushed.
        channel.callLater(2, transport.abortConnection)

    def arm(channel: Any) -> None:
        timers = deadlines(channel)
        timers.cancel()
        first, head = _settings["first"], _settings["head"]
        if first > 0:
            timers.first = channel.callLater(first, lambda: expire(channel, True))
        if head > 0:
            timers.head = channel.callLater(head, lambda: expire(channel, False))

    def deadlines(channel: Any) -> _Deadlines:
        timers = channel.__dict__.get("_relay_deadlines")
        if timers is None:
            timers = channel._relay_deadlines = _Deadlines()
        return timers

    def connection_made(self: Any) -> None:
        originals["connectionMade"](self)
        arm(self)

    def data_received(self: Any, data: bytes) -> None:
        deadlines(self).cancel_first()
        originals["dataReceived"](self, data)

    def all_headers_received(self: Any) -> None:
        deadlines(self).cancel()
        originals["allHeadersReceived"](self)

    def request_done(self: Any, request: Any) -> None:
        originals["requestDone"](self, request)
        if self.persistent and self.transport is not None:
            arm(self)  # a kept-alive connection waits for its next request head

    def connection_lost(self: Any, reason: Any) -> None:
        deadlines(self).cancel()
        originals["connectionLost"](self, reason)

    replace(HTTPChannel, "connectionMade", connection_made)
    replace(HTTPChannel, "dataReceived", data_received)
    replace(HTTPChannel, "allHeadersReceived", all_headers_received)
    replace(HTTPChannel, "requestDone", request_done)
    replace(HTTPChannel, "connectionLost", connection_lost)


def _probe_deadlines() -> None:
    from twisted.internet.error import ConnectionDone
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure
    from twisted.web.http import HTTPChannel

    saved = dict(_settings)
    _settings.update(first=1.0, head=2.0)
    try:
        outcomes = []
        for data in (b"", b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n"):
            clock, transport, channel = Clock(), StringTransport(), HTTPChannel()
            channel.callLater = clock.callLater  # as Twisted's own HTTPFactory sets it
            channel.makeConnection(transport)
            if data:
                channel.dataReceived(data)
            clock.advance(1.5)
            silent = transport.disconnecting
            clock.advance(1.0)
            outcomes.append((silent, transport.value().startswith(b"HTTP/1.1 408")))
            channel.connectionLost(Failure(ConnectionDone()))
        expect(outcomes[0] == (True, False), "a silent connection was not closed")
        expect(outcomes[1] == (False, True), "a slow request head was not answered 408")
        expect(outcomes[2] == (False, False), "a whole request head was cut")
    finally:
        _settings.update(saved)


REQUEST_DEADLINES = Patch(
    name="twisted_request_deadlines",
    packages=("twisted",),
    targets=tuple(f"twisted.web.http.HTTPChannel.{name}" for name in _STEPS),
    check=_check_deadlines,
    apply=_apply_deadlines,
    probe=_probe_deadlines,
)


def install_request_deadlines(*, first_message: float, handshake: float) -> bool:
    """Deadlines for every HTTP connection of this process (0 turns one off); True if on."""
    _settings.update(first=float(first_message), head=float(handshake))
    return install(REQUEST_DEADLINES)
