"""SIGTERM → drain: stop accepting, tell every client (1012), close upstreams, then exit.

daphne runs on Twisted's asyncio reactor; a "before shutdown" trigger that returns a Deferred
holds the shutdown until our drain finishes (bounded by RELAY_DRAIN_SECONDS, which should be
below the orchestrator's grace period and daphne's --application-close-timeout).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import weakref
from typing import Any

from django.conf import settings

from realtime import health

log = logging.getLogger("realtime.drain")

_live: weakref.WeakSet[Any] = weakref.WeakSet()


def register(consumer: Any) -> None:
    _live.add(consumer)


def unregister(consumer: Any) -> None:
    _live.discard(consumer)


def live_count() -> int:
    return len(_live)


async def drain_all(timeout: float) -> int:
    """End every session of this process with 1012; wait for them (bounded)."""
    health.set_draining()
    consumers = list(_live)
    log.warning("draining %d session(s) before shutdown", len(consumers))
    if consumers:
        ends = [asyncio.ensure_future(c.drain()) for c in consumers]
        _, pending = await asyncio.wait(ends, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("drain: %d session(s) did not end within %.0f s", len(pending), timeout)
    return len(consumers)


def install() -> None:
    """Hook into daphne's reactor (no-op when not served by daphne/Twisted)."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def before_shutdown() -> Any:
        future = asyncio.ensure_future(drain_all(settings.RELAY_CONFIG.drain_seconds))
        return defer.Deferred.fromFuture(future)

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
