"""Probes for the load balancer and the orchestrator, and the worker's draining flag.

``/healthz``: the process is alive and its event loop answers (no I/O).
``/readyz``: the worker can take new sessions: the database and the channel layer answer, the
provider configuration is complete, and the worker is not draining (``Runtime.draining``).
503 otherwise, with the check that failed. Both are plain JSON, unauthenticated and cheap
(see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from realtime.compat import redis_pools
from realtime.kernel.config import RelayConfig

log = logging.getLogger("realtime.ops.health")

CHECK_TIMEOUT_S = 2.0


class CheckFailed(Exception):
    """A failed check whose message is safe to show in the probe's answer."""


@never_cache
@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    runtime = request.relay  # type: ignore[attr-defined]
    checks = await run_checks(runtime.config)
    draining = runtime.draining
    ready = not draining and all(result == "ok" for result in checks.values())
    status = "draining" if draining else ("ready" if ready else "not_ready")
    return JsonResponse({"status": status, "checks": checks}, status=200 if ready else 503)


async def run_checks(config: RelayConfig) -> dict[str, str]:
    """Run every check concurrently, each bounded by CHECK_TIMEOUT_S; "ok" or a short reason."""
    names = ("database", "channel_layer", "provider_config")
    results = await asyncio.gather(
        _bounded("database", _check_database),
        _bounded("channel_layer", _check_channel_layer),
        _bounded("provider_config", lambda: _check_provider(config)),
    )
    return dict(zip(names, results, strict=True))


# The checks failing now, in this process: a failure is logged when it starts and when it
# ends, not at every probe (a load balancer probes every few seconds).
_failing: set[str] = set()


async def _bounded(name: str, check: Callable[[], Awaitable[None]]) -> str:
    started = time.monotonic()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await check()
    except TimeoutError as exc:
        reason = f"timeout after {CHECK_TIMEOUT_S:g} s"
        if name == "channel_layer" and hasattr(get_channel_layer(), "ring_size"):
            redis_pools.unreachable("readiness check", exc)  # a hung Redis
    except CheckFailed as exc:
        reason = f"error: {exc}"
    except Exception as exc:
        # Only the exception type goes out: driver messages may name hosts or users.
        reason = f"error: {type(exc).__name__}"
    else:
        if name in _failing:
            _failing.discard(name)
            log.info("readiness check %s passes again", name)
        return "ok"
    if name not in _failing:
        _failing.add(name)
        if name == "channel_layer" and redis_pools.OUTAGE.down:
            return reason  # "REDIS_URL unreachable" was said once already
        log.warning("readiness check %s failed: %s (logged once until it passes)", name, reason)
    log.debug("readiness check %s failed after %.3f s", name, time.monotonic() - started)
    return reason


async def _check_database() -> None:
    await sync_to_async(_ping_database, thread_sensitive=False)()


def _ping_database() -> None:
    # A worker thread of its own: a hung database must not block the shared ORM thread.
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


async def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise CheckFailed("no channel layer configured")
    connection = getattr(layer, "connection", None)
    ring_size = getattr(layer, "ring_size", 0)
    if callable(connection) and ring_size:  # channels_redis RedisChannelLayer: PING each shard
        try:
            for index in range(ring_size):
                await connection(index).ping()
        except Exception as exc:
            redis_pools.unreachable("readiness check", exc)
            raise
        redis_pools.answered()
        return
    # Any other layer: a round trip on a channel of our own.
    channel = await layer.new_channel("readyz.")
    await layer.send(channel, {"type": "readyz.ping"})
    message = await layer.receive(channel)
    if message.get("type") != "readyz.ping":
        raise CheckFailed("unexpected channel layer answer")


async def _check_provider(config: RelayConfig) -> None:
    problem = provider_problem(config)
    if problem:
        raise CheckFailed(problem)


def provider_problem(config: RelayConfig) -> str | None:
    """What keeps the provider configuration from working, or None. Never names a secret."""
    if config.provider == "openai" and not config.api_key:
        return "OPENAI_API_KEY is not set"
    if config.provider == "azure":
        if not config.endpoint or not config.model:
            return "AZURE_OPENAI_ENDPOINT / AZURE_OPENAI_DEPLOYMENT are not set"
        if not config.api_key and not config.use_entra_id:
            return "no Azure credential"
    if config.provider == "simulator" and not config.endpoint:
        return "the simulator's URL is not known (REALTIME_SIMULATOR_URL)"
    return None
