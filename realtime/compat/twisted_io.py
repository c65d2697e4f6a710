"""Twisted's TCP connections, written and read with fewer steps (two patches, each checked
and probed when the server is built, each off on its own when its target changed):
``twisted_eager_writes`` and ``twisted_direct_reads``, described with the fast path they
serve in ``realtime/compat/daphne_fastpath.py``. Written against Twisted 26.10.
"""

from __future__ import annotations

import errno
import socket
import sys
from types import SimpleNamespace
from typing import Any

from realtime.compat.patching import (
    Patch,
    Replacer,
    expect,
    expect_attributes,
    expect_parameters,
    served_by_daphne,
)

_RETRY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ENOBUFS}

_CONNECTION_STATE = (
    "_tempDataBuffer",
    "dataBuffer",
    "offset",
    "socket",
    "connected",
    "_writeDisconnected",
    "disconnecting",
    "startWriting",
)


def _socket_connection() -> tuple[Any, socket.socket, socket.socket, list[bool]]:
    """A Twisted TCP connection on one end of a socket pair, with no reactor behind it."""
    from twisted.internet import tcp

    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    connection = tcp.Connection(left, None, SimpleNamespace())  # type: ignore[arg-type]
    connection.connected = 1
    started: list[bool] = []
    connection.startWriting = lambda: started.append(True)  # no reactor loop here
    return connection, left, right, started


def _check_eager_writes() -> None:
    from twisted.internet import tcp

    expect_parameters(tcp.Connection.write, ("self", "data"), "tcp.Connection.write", "twisted")
    connection, left, right, started = _socket_connection()
    try:
        expect_attributes(connection, _CONNECTION_STATE, "Twisted's tcp.Connection", "twisted")
        connection.write(b"held")  # Twisted's own write: buffered until the reactor writes
        expect(
            connection._tempDataBuffer == [b"held"] and started,
            "Twisted's tcp.Connection buffers writes differently",
            "twisted",
        )
    finally:
        left.close()
        right.close()


def _apply_eager_writes(replace: Replacer) -> None:
    from twisted.internet import tcp

    buffered = tcp.Connection.write

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

    replace(tcp.Connection, "write", write)


def _probe_eager_writes() -> None:
    connection, left, right, started = _socket_connection()
    try:
        connection.write(b"now")
        expect(right.recv(16) == b"now" and not started, "an idle connection did not send at once")
        connection._tempDataBuffer.append(b"held")  # Twisted has data waiting
        connection._tempDataBufferSize = 4
        connection.write(b"after")
        expect(connection._tempDataBuffer == [b"held", b"after"], "a write overtook Twisted's")
    finally:
        left.close()
        right.close()


EAGER_WRITES = Patch(
    name="twisted_eager_writes",
    packages=("twisted",),
    targets=("twisted.internet.tcp.Connection.write",),
    check=_check_eager_writes,
    apply=_apply_eager_writes,
    probe=_probe_eager_writes,
    needed=served_by_daphne,
)


# ---- twisted_direct_reads ---------------------------------------------------------------------


def _asyncio_reactor() -> Any | None:
    reactor = sys.modules.get("twisted.internet.reactor")
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    return reactor if isinstance(reactor, AsyncioSelectorReactor) else None


def _check_direct_reads() -> None:
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    expect_parameters(
        AsyncioSelectorReactor._readOrWrite,
        ("self", "selectable", "read"),
        "AsyncioSelectorReactor._readOrWrite",
        "twisted",
    )
    reactor = _asyncio_reactor()
    expect_attributes(reactor, ("_asyncioEventloop", "_readers"), "the asyncio reactor", "twisted")
    expect(isinstance(reactor._readers, dict), "the reactor's _readers is no dict", "twisted")


class _ProbeReader:
    def __init__(self, sock: socket.socket, reactor: Any) -> None:
        self.sock, self.reactor, self.reads = sock, reactor, 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def doRead(self) -> None:
        self.reads += 1

    def logPrefix(self) -> str:
        return "relay-probe"


def _probe_direct_reads() -> None:
    """The reactor keeps each reader's descriptor where ``read_directly`` looks for it, and
    takes the reader off the loop again after the direct callback replaced its own."""
    reactor = _asyncio_reactor()
    loop = reactor._asyncioEventloop
    left, right = socket.socketpair()
    reader = _ProbeReader(left, reactor)
    try:
        reactor.addReader(reader)
        expect(reactor._readers.get(reader) == left.fileno(), "the reactor keeps readers otherwise")
        read_directly(reader)
        reactor.removeReader(reader)
        expect(reader not in reactor._readers, "the reactor did not forget the reader")
        expect(not loop.remove_reader(left.fileno()), "the direct read callback outlived it")
    finally:
        reactor.removeReader(reader)
        left.close()
        right.close()


def read_directly(transport: Any) -> None:
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


DIRECT_READS = Patch(
    name="twisted_direct_reads",
    packages=("twisted",),
    targets=("the asyncio reactor's read callback of each fast-path socket",),
    check=_check_direct_reads,
    probe=_probe_direct_reads,
    needed=lambda: _asyncio_reactor() is not None,
)
