"""Frames between a session and daphne's WebSocket protocol without the per-message layers.

Per audio frame, the ASGI path costs: daphne's ``onMessage`` builds a dict and queues it, the
consumer's task wakes and dispatches it by type; each reply passes channels' session wrapper
(which looks for a changed HTTP session), daphne's ``handle_reply`` coroutine and its checks;
Twisted then buffers every write and needs two ``epoll_ctl`` calls and another loop turn to
send it. For the hot path of one connection the relay instead:

- takes **binary frames** straight from daphne's protocol into the session, while nothing is
  queued ahead of them (so the order of frames is kept); text frames, connect and disconnect
  still go through ASGI;
- writes **its replies** as WebSocket frames of its own (a 2–4 byte header, no mask, no
  compression: what autobahn's ``sendMessage`` writes for a server without
  permessage-deflate) straight to the transport, while autobahn has nothing queued, is not
  mid-message and the payload needs no fragmenting; otherwise through ``sendMessage``;
- sends on the socket **at once** when nothing is buffered (Twisted's own buffering takes
  over when the socket is full): installed for every Twisted TCP connection
  (``install_eager_writes``), so HTTP responses and WebSocket handshakes skip two
  ``epoll_ctl`` calls and a loop turn too;
- has the event loop call Twisted's read handler for the socket **directly**, without the
  per-read log-context wrapper (``callWithLogger``: a prefix lookup and two context dict
  copies per read; the handler already logs its own exceptions). If Twisted stops and
  starts reading the socket again, its own registration (with the wrapper) comes back.

Checked against daphne 4.2.3 (``WebSocketProtocol.onMessage``, ``application_queue``,
``muted``, ``last_ping``; ``Server.handle_reply`` partial as the ASGI ``send``), autobahn 26.10
(``sendMessage``, ``state``, ``send_state``, ``send_queue``, ``_perMessageCompress``,
``autoFragmentSize``, ``maxMessagePayloadSize``, ``maskServerFrames``) and Twisted 26.10
(``tcp.Connection``: ``socket``, ``_tempDataBuffer``, ``dataBuffer``/``offset``,
``startWriting``; ``AsyncioSelectorReactor``: ``_asyncioEventloop``, ``_readers``,
``_readOrWrite``). Anything missing: the ASGI path is used, which is slower, never wrong.
``tests/compat`` fails when these change.
"""

from __future__ import annotations

import errno
import functools
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("realtime.compat")

_RETRY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ENOBUFS}
_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")


def daphne_protocol(send: Any) -> Any | None:
    """The daphne WebSocket protocol behind an ASGI ``send`` (through middleware wrappers)."""
    for _ in range(10):
        if isinstance(send, functools.partial):
            func, args = send.func, send.args
            if getattr(func, "__name__", "") == "handle_reply" and args:
                protocol = args[0]
                return protocol if _usable(protocol) else None
            return None
        owner = getattr(send, "__self__", None)
        send = getattr(owner, "real_send", None)  # channels' SessionMiddleware wrapper
        if send is None:
            return None
    return None


def _usable(protocol: Any) -> bool:
    return all(
        hasattr(protocol, name)
        for name in ("onMessage", "sendMessage", "application_queue", "muted", "state")
    )


class FastFrames:
    """One connection's fast path: binary frames in, replies out, eager socket writes."""

    def __init__(self, protocol: Any, on_audio: Callable[[bytes], None], max_bytes: int) -> None:
        self.protocol = protocol
        self._open = protocol.STATE_OPEN
        queue = protocol.application_queue
        slow = protocol.onMessage  # daphne's: dict + queue (the ASGI path)

        def on_message(payload: bytes, is_binary: bool) -> None:
            if (
                is_binary
                and not protocol.muted
                and queue.empty()  # nothing ahead of it: order is kept
                and len(payload) <= max_bytes
            ):
                protocol.last_ping = time.time()  # daphne's ping-timeout bookkeeping
                try:
                    on_audio(payload)
                    return
                except Exception:
                    pass  # the ASGI path runs it again and reports the error properly
            slow(payload, is_binary)

        protocol.onMessage = on_message
        # Frames of our own only where autobahn would write exactly the same bytes.
        self._plain = (
            getattr(protocol, "_perMessageCompress", True) is None
            and not getattr(protocol, "maskServerFrames", True)
            and getattr(protocol.factory, "isServer", False)
            and hasattr(protocol, "send_queue")
            and hasattr(protocol, "send_state")
        )
        self._ground = getattr(protocol, "SEND_STATE_GROUND", 0)
        self._fragment = getattr(protocol, "autoFragmentSize", 0) or 0
        self._max_payload = getattr(protocol, "maxMessagePayloadSize", 0) or 0
        self._write = protocol.transport.write
        _read_directly(protocol.transport)

    def send_bytes(self, data: bytes) -> bool:
        """False when the connection is no longer open (the caller drops the frame)."""
        return self._send(data, 2)

    def send_text(self, text: str) -> bool:
        return self._send(text.encode("utf-8"), 1)

    def _send(self, payload: bytes, opcode: int) -> bool:
        protocol = self.protocol
        if protocol.state != self._open:
            return False
        n = len(payload)
        if (
            self._plain
            and protocol.send_state == self._ground
            and not protocol.send_queue
            and (self._fragment <= 0 or n <= self._fragment)
            and not (0 < self._max_payload < n)
        ):
            if n <= 125:
                head = bytes((0x80 | opcode, n))
            elif n <= 0xFFFF:
                head = _HEAD16.pack(0x80 | opcode, 126, n)
            else:
                head = _HEAD64.pack(0x80 | opcode, 127, n)
            self._write(head + payload)
            return True
        protocol.sendMessage(payload, opcode == 2)
        return True


def _read_directly(transport: Any) -> None:
    """The event loop calls the reactor's read handler for this socket without the wrapper."""
    reactor = getattr(transport, "reactor", None)
    loop = getattr(reactor, "_asyncioEventloop", None)
    handler = getattr(reactor, "_readOrWrite", None)
    readers = getattr(reactor, "_readers", None)
    if loop is None or handler is None or not isinstance(readers, dict):
        return
    fd = readers.get(transport)
    if fd is not None:
        loop.add_reader(fd, handler, transport, True)  # replaces the wrapped callback


def install_eager_writes() -> None:
    """Every Twisted TCP connection (HTTP responses and handshakes included) sends at once
    when nothing waits in its buffers; otherwise, and for the rest of a partial send,
    Twisted's own buffered write."""
    try:
        from twisted.internet import tcp
    except ImportError:
        return
    connection = tcp.Connection
    if getattr(connection, "_relay_eager_writes", False):
        return
    buffered = connection.write

    def write(self: Any, data: bytes) -> None:
        if (
            data
            and self.connected
            and not self._tempDataBuffer
            and self.offset >= len(self.dataBuffer)
            and not self._writeDisconnected
            and not self.disconnecting
            and type(data) is bytes
        ):
            try:
                sent = self.socket.send(data)
            except OSError as exc:
                if exc.errno not in _RETRY:
                    buffered(self, data)  # Twisted's own write reports the failure
                    return
                sent = 0
            if sent < len(data):
                buffered(self, data[sent:])
            return
        buffered(self, data)

    connection.write = write
    connection._relay_eager_writes = True
