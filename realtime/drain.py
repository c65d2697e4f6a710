"""SIGTERM → drain: stop accepting, tell every client (1012), close upstreams, then exit.

daphne runs on Twisted's asyncio reactor; a "before shutdown" trigger that returns a Deferred
holds the shutdown until the runtime's drain finishes (bounded by RELAY_DRAIN_SECONDS, which
should be below the orchestrator's grace period and daphne's --application-close-timeout).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from realtime.runtime import Runtime


def install(runtime: Runtime) -> None:
    """Hook the runtime's drain into daphne's reactor (no-op when not served by Twisted)."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    def before_shutdown() -> Any:
        return defer.Deferred.fromFuture(asyncio.ensure_future(runtime.drain()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)
