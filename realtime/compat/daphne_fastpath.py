"""Frames between a session and daphne's WebSocket protocol without the per-message layers.

Per audio frame, the ASGI path costs: daphne's ``onMessage`` builds a dict and queues it, the
consumer's task wakes and dispatches it by type; each reply passes channels' session wrapper
(which looks for a changed HTTP session), daphne's ``handle_reply`` coroutine and its checks;
Twisted then buffers every write and needs two ``epoll_ctl`` calls and another loop turn to
send it. For the hot path of one connection the relay instead (three patches, each checked
and probed when the server is built, each off on its own when its target changed):

- ``daphne_fastpath`` — takes **binary frames** straight from daphne's protocol into the
  session, while nothing is queued ahead of them (so the order of frames is kept); text
  frames, connect and disconnect still go through ASGI; and writes **its replies** as
  WebSocket frames of its own (a 2–4 byte header, no mask, no compression: what autobahn's
  ``sendMessage`` writes for a server without permessage-deflate) straight to the transport,
  while autobahn has nothing queued, is not mid-message and the payload needs no
  fragmenting; otherwise through ``sendMessage``. The probe runs an in-memory daphne
  connection through it: frames in reach the session or the ASGI queue as daphne would have
  queued them, and every reply is byte for byte what ``sendMessage`` writes.
- ``twisted_eager_writes`` — sends on the socket **at once** when nothing is buffered
  (Twisted's own buffering takes over when the socket is full), for every Twisted TCP
  connection (HTTP responses and WebSocket handshakes skip two ``epoll_ctl`` calls and a loop
  turn too). The probe writes on a socket pair: at once when Twisted holds nothing, queued
  behind Twisted's own data otherwise.
- ``twisted_direct_reads`` — has the event loop call Twisted's read handler for a fast-path
  socket **directly**, without the per-read log-context wrapper (``callWithLogger``: a prefix
  lookup and two context dict copies per read; the handler already logs its own exceptions).
  If Twisted stops and starts reading the socket again, its own registration comes back.

Written against daphne 4.2 (``WebSocketProtocol.onMessage``, ``application_queue``, ``muted``,
``last_ping``; ``Server.handle_reply`` partial as the ASGI ``send``), autobahn 26.10
(``sendMessage``, ``state``, ``send_state``, ``send_queue``, ``_perMessageCompress``,
``autoFragmentSize``, ``maxMessagePayloadSize``, ``maskServerFrames``) and Twisted 26.10
(``tcp.Connection``: ``socket``, ``_tempDataBuffer``, ``dataBuffer``/``offset``,
``startWriting``; ``AsyncioSelectorReactor``: ``_asyncioEventloop``, ``_readers``,
``_readOrWrite``). Off: the ASGI path and Twisted's buffered writes, slower, never wrong.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter

from realtime.compat import patching
from realtime.compat.patching import (
    Patch,
    expect,
    expect_attributes,
    expect_parameters,
    served_by_daphne,
)
from realtime.compat.twisted_io import DIRECT_READS, EAGER_WRITES, read_directly

_HEAD16 = struct.Struct("!BBH")
_HEAD64 = struct.Struct("!BBQ")

CONNECTIONS = Counter(
    "relay_daphne_connections",
    "WebSocket sessions by the path their frames took: fast (daphne_fastpath) or asgi",
    ["path"],
)
_FAST, _ASGI = CONNECTIONS.labels("fast"), CONNECTIONS.labels("asgi")


def attach(send: Any, on_audio: Callable[[bytes], None], max_bytes: int) -> FastFrames | None:
    """The fast path for the connection behind an ASGI ``send``; None: the ASGI path."""
    if not patching.active(FASTPATH.name):
        _ASGI.inc()
        return None
    protocol = daphne_protocol(send)
    if protocol is None:
        _ASGI.inc()
        return None
    _FAST.inc()
    return FastFrames(protocol, on_audio, max_bytes)


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
        if patching.active(DIRECT_READS.name):
            read_directly(protocol.transport)

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


# ---- daphne_fastpath: checked and probed --------------------------------------------------------


def _check_fastpath() -> None:
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol

    expect_parameters(
        WebSocketProtocol.onMessage, ("self", "payload", "isBinary"), "daphne onMessage", "daphne"
    )
    expect(WebSocketProtocol.muted is False, "daphne WebSocketProtocol.muted is gone", "daphne")
    expect_parameters(
        Server.handle_reply, ("self", "protocol", "message"), "daphne Server.handle_reply", "daphne"
    )
    expect_parameters(
        WebSocketProtocol.sendMessage, ("self", "payload", "isBinary"), "sendMessage", "autobahn"
    )
    expect_attributes(
        WebSocketProtocol, ("STATE_OPEN", "SEND_STATE_GROUND"), "autobahn", "autobahn"
    )


def _probe_fastpath() -> None:
    from realtime.compat.probes import MemoryConnection

    connection = MemoryConnection()
    protocol = connection.protocol
    try:
        expect(_usable(protocol), "daphne's WebSocketProtocol lost what the fast path uses")
        # What daphne's own onMessage does with a binary frame is what the fast path does
        # instead: queue it as websocket.receive and note the client alive (last_ping).
        before = dict(vars(protocol))
        protocol.onMessage(b"\x00", True)
        changed = {k for k, v in vars(protocol).items() if before.get(k, before) is not v}
        expect(
            changed == {"last_ping"}
            and connection.received() == [{"type": "websocket.receive", "bytes": b"\x00"}],
            f"daphne's onMessage now also changes {sorted(changed - {'last_ping'})} or queues "
            "frames otherwise",
            "daphne",
        )
        heard: list[bytes] = []
        fast = FastFrames(protocol, heard.append, max_bytes=64)
        protocol.last_ping = 0.0
        connection.feed(b"\x01\x02")
        expect(heard == [b"\x01\x02"] and connection.received() == [], "audio missed the path")
        expect(protocol.last_ping > 0, "the fast path did not note the client alive")
        connection.feed(b"hi", binary=False)
        connection.feed(bytes(65))  # over the limit: the ASGI path reports it
        expect(
            connection.received()
            == [
                {"type": "websocket.receive", "text": "hi"},
                {"type": "websocket.receive", "bytes": bytes(65)},
            ],
            "daphne queues frames for the application differently",
            "daphne",
        )
        for size in (0, 125, 126, 65535, 65536):
            payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
            for binary in (True, False):
                protocol.sendMessage(payload, binary)
                theirs = connection.written()
                expect(fast._send(payload, 2 if binary else 1), "the connection was not open")
                expect(connection.written() == theirs, f"autobahn frames {size} bytes otherwise")
        protocol.muted = True
        connection.feed(b"\x03")
        expect(heard == [b"\x01\x02"] and connection.received() == [], "a muted frame got in")
    finally:
        connection.close()


FASTPATH = Patch(
    name="daphne_fastpath",
    packages=("daphne", "autobahn"),
    targets=(
        "daphne WebSocketProtocol.onMessage (per connection)",
        "the connection's transport (reply frames written directly)",
    ),
    check=_check_fastpath,
    probe=_probe_fastpath,
    needed=served_by_daphne,
)


# ---- twisted_eager_writes ---------------------------------------------------------------------

__all__ = ["DIRECT_READS", "EAGER_WRITES", "FASTPATH", "FastFrames", "attach"]
