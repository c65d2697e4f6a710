"""Redis for the relay: a timeout on every call, a cap on every pool, one line per outage.

A hung Redis (paused, a network partition: TCP up, no answer) used to hold whatever waited on it
for as long as it hung (a greeting 28 s late, a failed login 31 s), and pools grew to the
largest burst and stayed there (≈ 270 idle connections per worker after 3 000 connects).
Every Redis use now gets its connections from a ``BlockingConnectionPool`` made here:

- ``socket_connect_timeout`` and ``socket_timeout`` = ``RELAY_REDIS_TIMEOUT_SECONDS`` (connect
  and each read), and ``timeout`` = the same for waiting on a free pooled connection;
- ``max_connections`` = ``RELAY_REDIS_MAX_CONNECTIONS`` per pool. A worker process has three
  pools: the channel layer's (per shard), the sync and the async rate-limit storage.

What each use does when Redis does not answer in time (docs/operations.md, "Redis"):

====================================  =========================================================
channel layer: join the broadcast     fail open: the session runs; it is not reachable by
group (connect, every heartbeat)      terminate/broadcast until a heartbeat re-joins
channel layer: receive loop           retries with backoff (≤ 10 s); control messages sent
                                      meanwhile are lost
channel layer: admin terminate        fail closed: nothing is sent, the admin is told so
login, ticket and connect throttles   fail open: the request goes on unthrottled
readiness probe (/readyz)             503 ``channel_layer``
====================================  =========================================================

Outages are reported once: the first failure after Redis answered (or at start-up, see
``probe_at_start``) logs one WARNING naming ``REDIS_URL``'s host (never its password) and what
fails open; further failures log at DEBUG; the first success afterwards logs one INFO line.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis

log = logging.getLogger("realtime.compat.redis_pools")

CONSEQUENCES = (
    "sessions are admitted but cannot be terminated from another worker, and the login, "
    "ticket and connect limits are not checked, until it answers"
)


def endpoint(url: str) -> str:
    """``host:port/db`` of a Redis URL, for log lines (never the password)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or parts.path or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "?"
    return f"{host}{port}{parts.path if parts.hostname else ''}"


def pool_options(timeout_s: float, max_connections: int, name: str) -> dict[str, Any]:
    """Keyword arguments of every Redis pool the relay makes (``client_name`` shows in
    ``CLIENT LIST``: which pool a connection belongs to)."""
    return {
        "max_connections": max_connections,
        "timeout": timeout_s,  # waiting for a free connection of the pool
        "socket_connect_timeout": timeout_s,
        "socket_timeout": timeout_s,
        "client_name": name,
    }


def sync_pool(url: str, timeout_s: float, max_connections: int, name: str) -> Any:
    return redis.BlockingConnectionPool.from_url(
        url, **pool_options(timeout_s, max_connections, name)
    )


def async_pool(url: str, timeout_s: float, max_connections: int, name: str) -> Any:
    return aioredis.BlockingConnectionPool.from_url(
        url, **pool_options(timeout_s, max_connections, name)
    )


class Outage:
    """Process-wide: does Redis answer? One WARNING when it stops, one INFO when it is back.

    Also a circuit breaker for the calls that may be skipped (rate limits, joining groups,
    terminate): while Redis is down each such use tries it at most once every ``retry_s``
    seconds, and is otherwise answered at once (fail open or closed, as that use does), so a
    hung Redis costs one timeout per use per ``retry_s``, not one per request. The channel
    layer's receive loop and the readiness probe always try: they notice Redis is back.
    """

    retry_s = 5.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down = False
        self.url = ""
        self._tried: dict[str, float] = {}

    def may_try(self, use: str) -> bool:
        now = time.monotonic()
        if not self.down:
            self._tried[use] = now  # so a call that fails now is not retried at once
            return True
        with self._lock:
            if now - self._tried.get(use, float("-inf")) < self.retry_s:
                return False
            self._tried[use] = now
        return True

    def reset(self) -> None:
        with self._lock:
            self.down, self.url, self._tried = False, "", {}

    def failed(self, use: str, exc: BaseException) -> None:
        with self._lock:
            first, self.down = not self.down, True
        if first:
            log.warning(
                "REDIS_URL unreachable (%s; %s: %s): %s",
                self.where(),
                use,
                type(exc).__name__,
                CONSEQUENCES,
            )
        else:
            log.debug("Redis still unreachable (%s: %s)", use, type(exc).__name__)

    def answered(self) -> None:
        if not self.down:  # the common case: no lock
            return
        with self._lock:
            was, self.down = self.down, False
        if was:
            log.info("REDIS_URL answers again (%s)", self.where())

    def where(self) -> str:
        url = self.url
        if not url:
            from django.conf import settings

            url = getattr(settings, "REDIS_URL", "")
        return endpoint(url) if url else "Redis"


OUTAGE = Outage()


def may_try(use: str) -> bool:
    return OUTAGE.may_try(use)


def unreachable(use: str, exc: BaseException) -> None:
    OUTAGE.failed(use, exc)


def answered() -> None:
    OUTAGE.answered()


def probe_at_start(url: str, timeout_s: float) -> bool:
    """One PING when a worker starts: an unreachable ``REDIS_URL`` is said once, at start,
    not by every later call. True when Redis answered."""
    OUTAGE.url = url
    pool = sync_pool(url, timeout_s, 1, "relay-probe")
    try:
        redis.Redis(connection_pool=pool).ping()
    except (redis.RedisError, OSError) as exc:
        unreachable("start-up check", exc)
        return False
    finally:
        pool.disconnect()
    answered()
    return True
