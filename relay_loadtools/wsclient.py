"""A deliberately minimal WebSocket client for load generation (not a general client).

Why not ``websockets``: on a 2-core machine the load generator shares the CPU with the relay
and the simulator, so every microsecond it spends per frame is taken from the system under
test. This client writes frames straight to the transport with an all-zero masking key
(legal per RFC 6455 §5.3: the key must merely be sent; XOR with zero is the identity), and
parses unmasked server frames from one buffer. No extensions, no fragmentation on send.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_ZERO_MASK = b"\x00\x00\x00\x00"
_LEN16 = struct.Struct("!H")
_LEN64 = struct.Struct("!Q")

OnMessage = Callable[[int, bytes], None]


def frame_header(opcode: int, length: int) -> bytes:
    """Header of one final client frame, mask bit set, zero key included."""
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, 0x80 | length)) + _ZERO_MASK
    if length < 65536:
        return bytes((first, 0x80 | 126)) + _LEN16.pack(length) + _ZERO_MASK
    return bytes((first, 0x80 | 127)) + _LEN64.pack(length) + _ZERO_MASK


class HandshakeError(Exception):
    pass


class RawWebSocket(asyncio.Protocol):
    """One client connection; ``on_message(opcode, payload)`` is called for each message."""

    def __init__(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._handshake: asyncio.Future[bytes] | None = None
        self._open = False
        self._frag_op = 0
        self._frag = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(HandshakeError("connection lost during handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._open:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            if self._handshake is not None and not self._handshake.done():
                self._handshake.set_result(head)
            if not head.startswith(b"HTTP/1.1 101"):
                return
            self._open = True
        self._parse()

    # -- frames -------------------------------------------------------------------------------

    def _parse(self) -> None:
        buf = self._buf
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = _LEN16.unpack_from(buf, pos + 2)[0]
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = _LEN64.unpack_from(buf, pos + 2)[0]
                head = 10
            if b1 & 0x80:  # servers never mask; skip a key if one is there anyway
                head += 4
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            self._frame(b0 & 0x80, b0 & 0x0F, payload)
        if pos:
            del buf[:pos]

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._write(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            if self._open:
                self._write(OP_CLOSE, payload[:2])
            self._open = False
            if self.transport is not None:
                self.transport.close()
        elif opcode == OP_CONT:
            self._frag += payload
            if fin:
                data, self._frag = bytes(self._frag), bytearray()
                self.on_message(self._frag_op, data)
        elif opcode != OP_PONG:
            if fin:
                self.on_message(opcode, payload)
            else:
                self._frag_op, self._frag = opcode, bytearray(payload)

    def _write(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame_header(opcode, len(payload)) + payload)

    # -- public -------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._open

    def send_binary(self, payload: bytes) -> None:
        self._write(OP_BINARY, payload)

    def send_text(self, text: str) -> None:
        self._write(OP_TEXT, text.encode())

    def close(self) -> None:
        if self._open:
            self._write(OP_CLOSE, struct.pack("!H", 1000))
            self._open = False
        if self.transport is not None:
            self.transport.close()

    async def handshake(self, host: str, port: int, path: str, origin: str | None) -> None:
        assert self.transport is not None
        self._handshake = asyncio.get_running_loop().create_future()
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if origin:
            lines.append(f"Origin: {origin}")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await self._handshake
        if not head.startswith(b"HTTP/1.1 101"):
            raise HandshakeError(head.split(b"\r\n", 1)[0].decode(errors="replace"))


async def open_ws(
    host: str, port: int, path: str, on_message: OnMessage, origin: str | None = None
) -> RawWebSocket:
    loop = asyncio.get_running_loop()
    _transport, proto = await loop.create_connection(lambda: RawWebSocket(on_message), host, port)
    try:
        await proto.handshake(host, port, path, origin)
    except BaseException:
        proto.close()
        raise
    return proto
