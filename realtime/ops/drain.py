"""SIGTERM → drain: stop accepting, tell every client (1012), close upstreams, then exit.

daphne runs on Twisted's asyncio reactor; a "before shutdown" trigger that returns a Deferred
holds the shutdown until the runtime's drain finishes (bounded by RELAY_DRAIN_SECONDS, which
should be below the orchestrator's grace period and daphne's --application-close-timeout).

What a new connection sees: while the drain runs, the listener still accepts, and a new
WebSocket is refused with ``server_restarting`` and 1012 (``/readyz`` answers 503). When the
drain is done, the worker closes its listening sockets without dropping a handshake:

1. it stops new TCP handshakes from starting (on Linux a socket filter drops the SYNs that reach
   the listening socket; the client's kernel sends its SYN again a second later, meets the
   closed port and reports ``connection refused``) while handshakes already under way complete
   and are accepted as usual (``HANDSHAKE_S``);
2. it accepts everything the kernel still queues and closes the socket in the same loop turn
   (closing a listening socket resets the connections queued on it, whose clients saw their
   connect succeed);
3. it lets the connections it accepted be answered (a handshake in flight gets its 1012) and
   closed, at most ``SETTLE_S``; only then does the reactor stop (and drop what is left).

From then on the port refuses TCP connections (``connection refused``), which the shipped
HAProxy config retries on another worker (``retries`` + ``option redispatch``). Without step 1,
a client whose handshake completed between the last ``accept`` and the ``close`` was reset
(its WebSocket client saw no HTTP answer); without step 2, so was every connection the kernel
had queued (Twisted accepts at most as many per turn as it did the turn before); without the
postponement, handshakes in flight when SIGTERM came were dropped: daphne cancels every
application instance at the start of shutdown, which ``serve`` holds until the drain is over.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import logging
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from realtime.compat import daphne_server

log = logging.getLogger("realtime.ops.drain")

_done = asyncio.Event()
# After new handshakes are held off: for those under way to complete (the client's ACK of the
# SYN-ACK, one round trip; a balancer beside the worker is well under a millisecond away).
HANDSHAKE_S = 0.2
SETTLE_S = 2.0  # at most, for connections accepted before the port closed to be answered
_listeners: list[Any] = []
_servers: list[Any] = []


def serving(server: Any, port: Any) -> None:
    """daphne's ``server`` listens on ``port`` (``serve``'s server class calls this from
    ``listen_success``)."""
    if server not in _servers:
        _servers.append(server)
    _listeners.append(port)
    # A socket inherited from a supervisor may carry the filter of a worker that drained on
    # it before (a restarted worker): take new connections again.
    sock = getattr(port, "socket", None)
    if isinstance(sock, socket.socket):
        admit_new_handshakes(sock)


def install(drain: Callable[[], Awaitable[Any]]) -> None:
    """Hook a drain (the runtime's: ``Runtime.drain``) into daphne's reactor, to run before
    it shuts down (no-op when not served by Twisted)."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def before_shutdown() -> Any:
        return defer.Deferred.fromFuture(in_own_context(shutdown(drain)))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


def in_own_context(work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """``work`` as a task with a fresh context. Twisted's SIGTERM handler schedules the
    shutdown in whatever context the main thread was running when the signal came: inside a
    database call, asgiref's single-thread guard is set there, and every database call of the
    drain (the sessions' closes and detaches) would fail with "would deadlock"."""
    return asyncio.get_running_loop().create_task(work, context=contextvars.Context())


async def shutdown(drain: Callable[[], Awaitable[Any]]) -> None:
    try:
        await drain()
        await close_listeners()
    finally:
        _done.set()


async def finished(timeout: float) -> None:
    """Until the drain is over, at most ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await _done.wait()
    except TimeoutError:
        pass


async def until_drained() -> None:
    """``serve`` holds daphne's cancel-everything step until the drain is over."""
    await finished(300 + HANDSHAKE_S + 2 * SETTLE_S)  # RELAY_DRAIN_SECONDS is at most 300 s


async def close_listeners() -> None:
    """Stop accepting without dropping a connection (the steps in this module's doc)."""
    loop = asyncio.get_running_loop()
    ports, _listeners[:] = list(_listeners), []
    held = [
        hold_new_handshakes(p.socket)
        for p in ports
        if isinstance(getattr(p, "socket", None), socket.socket)
    ]
    if any(held):
        await asyncio.sleep(HANDSHAKE_S)  # the reactor accepts them meanwhile, as usual
    numbers = {_port_number(port) for port in ports} - {None}
    for port in ports:
        daphne_server.accept_queued_before_close(port)
        stopped = port.stopListening()
        if stopped is not None:
            await stopped.asFuture(loop)
    started = time.monotonic()
    # Polled: neither Twisted nor daphne has an event for "the last connection closed".
    while time.monotonic() - started < SETTLE_S and _still_open(numbers, tuple(ports)):  # noqa: ASYNC110
        await asyncio.sleep(0.02)


def _port_number(port: Any) -> int | None:
    try:
        return int(port.getHost().port)
    except Exception:
        return None


def _still_open(port_numbers: set[int], _listening: tuple[Any, ...] = ()) -> bool:
    """Whether a connection accepted on one of these ports is open: Twisted's transports (the
    reactor's readers and writers; an accepted one is local on the listening port), else
    daphne's connection table (unknown: the whole settle time)."""
    from twisted.internet import reactor

    get_readers = getattr(reactor, "getReaders", None)
    get_writers = getattr(reactor, "getWriters", None)
    if get_readers is None or get_writers is None or not port_numbers:
        return any(_serving(server) for server in _servers)
    for transport in {*get_readers(), *get_writers()} - set(_listening):
        host = getattr(transport, "getHost", None)
        try:
            local = host() if host is not None else None
        except Exception:
            continue
        if getattr(local, "port", None) in port_numbers and hasattr(transport, "getPeer"):
            return True
    return False


def _serving(server: Any) -> bool:
    count = daphne_server.open_connections(server)
    return count is None or count > 0


# ---- holding off new TCP handshakes on a listening socket (Linux) --------------------------

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27
# Classic BPF, run by the kernel on each segment for a TCP socket with the TCP header at
# offset 0: drop (return 0) a segment with SYN set, keep the others whole. A listening
# socket sees SYNs (new handshakes) and the ACKs that complete handshakes under way; its
# accepted connections inherit the filter and never receive a SYN.
_DROP_SYN = (
    (0x30, 0, 0, 13),  # ldb [13]: the TCP flags byte
    (0x45, 0, 1, 0x02),  # jset #SYN → next, else skip one
    (0x06, 0, 0, 0),  # ret #0: drop
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep
)


def hold_new_handshakes(sock: socket.socket) -> bool:
    """No new TCP handshake starts on listening socket ``sock`` (those under way complete);
    a client's SYN is dropped and sent again by its kernel. True if held (Linux, TCP)."""
    if not sys.platform.startswith("linux") or sock.family not in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        return False
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in _DROP_SYN))
    program = struct.pack("HP", len(_DROP_SYN), ctypes.addressof(code))  # struct sock_fprog
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)  # the kernel copies it
    except OSError as exc:
        log.warning("drain: cannot hold off new connections (%s); closing the port as is", exc)
        return False
    return True


def admit_new_handshakes(sock: socket.socket) -> None:
    """Undo ``hold_new_handshakes`` (nothing to undo is fine)."""
    if sys.platform.startswith("linux") and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
        except OSError:
            pass  # ENOENT: no filter
