"""Guards daphne lacks: oversized WebSocket messages, slow and silent HTTP clients.

**Oversized messages.** autobahn checks ``maxMessagePayloadSize`` when a frame *begins*
(``onMessageFrameBegin``, before its payload is read) and then drops the TCP connection
(``failByDrop``): the client sees a bare 1006 and no reason. Here the check instead discards
the rest of that message as it streams in (nothing of it is kept, whatever its size) and
hands the application a ``websocket.receive`` with ``relay_frame_too_large`` (the declared
size) and ``relay_binary``; the consumer ends the session as for any frame over its limit:
``frame_too_large`` and 1009. A client that keeps sending after the close frame is cut by
autobahn's close-handshake timeout.

**Slow and silent HTTP clients.** Twisted's only request timeout is an inactivity timer
(60 s) that every byte resets: a client that trickles a header line every few seconds
(slowloris) holds its socket forever. ``install_request_deadlines`` adds two deadlines per
connection, counted from the moment it is ready for a request (accepted, or its previous
response sent): the first byte within ``first_message`` seconds (else the socket is
closed) and the whole request head, WebSocket upgrade included, within ``handshake``
seconds (else ``408 Request Timeout`` and close). They follow the life of Twisted's own
timer: off once a head is complete (an upgraded WebSocket is never touched again), on again
after a response on a kept-alive connection.

Checked against daphne 4.2.3, autobahn 26.10.2 and Twisted 26.10.0 (``tests/compat``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from realtime.kernel.config import RelayConfig
    from realtime.kernel.endings import Ending

_FRAME_MARK = "_relay_frame_guard"
_DEADLINE_MARK = "_relay_request_deadlines"
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


def install_frame_guard() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not served by daphne
        return
    if getattr(WebSocketProtocol, _FRAME_MARK, False):
        return
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
        message_end(self)

    WebSocketProtocol._max_message_size_exceeded = max_message_size_exceeded
    WebSocketProtocol.onMessageFrameData = on_frame_data
    WebSocketProtocol.onMessageFrameEnd = on_frame_end
    WebSocketProtocol.onMessageEnd = on_message_end
    setattr(WebSocketProtocol, _FRAME_MARK, True)


# ---------------------------------------------------------------------------------------------
# Request deadlines
# ---------------------------------------------------------------------------------------------


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


def install_request_deadlines(*, first_message: float, handshake: float) -> None:
    """Deadlines for every HTTP connection of this process (0 turns one off)."""
    from twisted.internet import reactor
    from twisted.web.http import HTTPChannel

    settings = {"first": float(first_message), "head": float(handshake)}
    previous = getattr(HTTPChannel, _DEADLINE_MARK, None)
    if previous is not None:  # installed: only the numbers change
        previous.update(settings)
        return
    originals = {
        name: getattr(HTTPChannel, name)
        for name in (
            "connectionMade",
            "dataReceived",
            "allHeadersReceived",
            "requestDone",
            "connectionLost",
        )
    }

    def expire(channel: Any, silent: bool) -> None:
        deadlines(channel).cancel()
        transport = channel.transport
        if transport is None:
            return
        if not silent:
            transport.write(TIMEOUT_RESPONSE)
        transport.loseConnection()
        # A client that reads nothing would hold the socket until the 408 is flushed.
        reactor.callLater(2, transport.abortConnection)

    def arm(channel: Any) -> None:
        timers = deadlines(channel)
        timers.cancel()
        if settings["first"] > 0:
            timers.first = reactor.callLater(settings["first"], expire, channel, True)
        if settings["head"] > 0:
            timers.head = reactor.callLater(settings["head"], expire, channel, False)

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

    HTTPChannel.connectionMade = connection_made
    HTTPChannel.dataReceived = data_received
    HTTPChannel.allHeadersReceived = all_headers_received
    HTTPChannel.requestDone = request_done
    HTTPChannel.connectionLost = connection_lost
    setattr(HTTPChannel, _DEADLINE_MARK, settings)
