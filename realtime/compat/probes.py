"""In-memory objects the patches' probes exercise: a daphne WebSocket connection on a fake
transport, opened and accepted the way daphne's HTTP protocol hands an upgrade over.

Nothing here touches a socket, the reactor or an event loop: autobahn's timers are off
(timeouts 0), the transport is Twisted's ``StringTransport`` (its public test double) and
daphne's server is a stand-in with the few methods the protocol calls.
"""

from __future__ import annotations

import asyncio
import os
import struct
from typing import Any

from realtime.compat.patching import expect

HANDSHAKE = (
    b"GET /realtime HTTP/1.1\r\nHost: probe\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class _Server:
    """What daphne's ``WebSocketProtocol`` asks of daphne's ``Server``."""

    root_path = ""
    proxy_forwarded_address_header = None
    proxy_forwarded_port_header = None
    proxy_forwarded_proto_header = None

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.open = 0

    def protocol_connected(self, protocol: Any) -> None:
        self.open += 1

    def protocol_disconnected(self, protocol: Any) -> None:
        self.open -= 1

    def log_action(self, *args: Any) -> None:
        pass

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        return self.queue


class MemoryConnection:
    """One daphne WebSocket connection, open, on an in-memory transport."""

    def __init__(self, **options: Any) -> None:
        from daphne.ws_protocol import WebSocketFactory
        from twisted.internet.address import IPv4Address
        from twisted.internet.task import Clock
        from twisted.internet.testing import StringTransport

        self.server = _Server()
        factory = WebSocketFactory(self.server, server="relay-probe", reactor=Clock())
        factory.setProtocolOptions(
            openHandshakeTimeout=0,
            closeHandshakeTimeout=0,
            autoPingInterval=0,
            autoPingTimeout=0,
            **options,
        )
        peer = IPv4Address("TCP", "127.0.0.1", 50000)
        self.protocol = protocol = factory.buildProtocol(peer)
        protocol._raw_query_string = b""  # as daphne's HTTP protocol hands it over
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080), peerAddress=peer
        )
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)
        protocol.dataReceived(HANDSHAKE)
        expect(self.received() == [{"type": "websocket.connect"}], "no websocket.connect")
        protocol.handle_reply({"type": "websocket.accept"})
        expect(protocol.state == protocol.STATE_OPEN, "the probe connection did not open")
        expect(self.written().startswith(b"HTTP/1.1 101"), "no 101 Switching Protocols")

    def feed(self, payload: bytes, *, binary: bool = True) -> None:
        """A client frame (masked, final, unfragmented) arrives."""
        self.protocol.dataReceived(client_frame(payload, 2 if binary else 1))

    def feed_raw(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def written(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data

    def received(self) -> list[dict[str, Any]]:
        out = []
        while not self.server.queue.empty():
            out.append(self.server.queue.get_nowait())
        return out

    def close(self) -> None:
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        if self.transport.connected:
            self.transport.loseConnection()
        self.protocol.connectionLost(Failure(ConnectionDone()))


def client_frame(payload: bytes, opcode: int, *, length: int | None = None) -> bytes:
    """A masked client frame; ``length`` declares another payload size (for size checks)."""
    n = len(payload) if length is None else length
    if n <= 125:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n <= 0xFFFF:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked
