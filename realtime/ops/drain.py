"""SIGTERM → drain: stop accepting, tell every client (1012), close upstreams, then exit.

daphne runs on Twisted's asyncio reactor; a "before shutdown" trigger that returns a Deferred
holds the shutdown until the runtime's drain finishes (bounded by RELAY_DRAIN_SECONDS, which
should be below the orchestrator's grace period and daphne's --application-close-timeout).

What a new connection sees: while the drain runs, the listener still accepts, and a new
WebSocket is refused with ``server_restarting`` and 1012 (``/readyz`` answers 503). When the
drain is done, the worker closes its listening sockets *first*, then lets the connections it
already accepted finish (at most ``SETTLE_S``: a handshake in flight still gets its 1012),
and only then lets the reactor stop. From then on the port refuses TCP connections
(``connection refused``), which the shipped HAProxy config retries on another worker
(``retries`` + ``option redispatch``). Without this, connections accepted after the drain
were dropped mid-handshake when the reactor stopped, and so were handshakes in flight when
SIGTERM came: daphne cancels every application instance at the start of shutdown, which
``serve`` postpones until the drain is over.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.compat import daphne_server

_done = asyncio.Event()
SETTLE_S = 1.0  # at most, for connections accepted before the port closed to be answered
SETTLE_MIN_S = 0.25  # their request is usually in the socket buffer already
_listeners: list[Any] = []
_servers: list[Any] = []


def serving(server: Any, port: Any) -> None:
    """daphne listens on ``port`` (``serve``'s server calls this from ``listen_success``)."""
    if server not in _servers:
        _servers.append(server)
    _listeners.append(port)


def install(drain: Callable[[], Awaitable[Any]]) -> None:
    """Hook a drain (the runtime's: ``Runtime.drain``) into daphne's reactor, to run before
    it shuts down (no-op when not served by Twisted)."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def before_shutdown() -> Any:
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown(drain)))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


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
    await finished(300 + 2 * SETTLE_S)  # RELAY_DRAIN_SECONDS is at most 300 s


async def close_listeners() -> None:
    """Stop accepting, then give accepted connections a moment to be answered and closed."""
    loop = asyncio.get_running_loop()
    ports, _listeners[:] = list(_listeners), []
    for port in ports:
        daphne_server.accept_queued_before_close(port)
        stopped = port.stopListening()
        if stopped is not None:
            await stopped.asFuture(loop)
    started = time.monotonic()
    await asyncio.sleep(SETTLE_MIN_S)
    # Polled: daphne's connection table has no event to wait on (unknown: the whole time).
    while time.monotonic() - started < SETTLE_S and any(_serving(s) for s in _servers):  # noqa: ASYNC110
        await asyncio.sleep(0.02)


def _serving(server: Any) -> bool:
    count = daphne_server.open_connections(server)
    return count is None or count > 0
