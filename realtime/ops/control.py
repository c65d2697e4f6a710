"""Control over sessions across workers, through the channel layer: a consumer is addressed
by its ``channel_name`` (stored in its row), and every consumer joins ``SESSIONS_GROUP`` for
broadcasts. Terminate (the admin, ``manage.py`` commands) comes this way. With Redis, a send
is bounded by ``RELAY_REDIS_TIMEOUT_SECONDS`` and fails closed (``ControlUnavailable``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from realtime.compat import redis_pools
from realtime.models import RealtimeSession

SESSIONS_GROUP = "realtime_sessions"
TERMINATE = "realtime.terminate"


class ControlUnavailable(Exception):
    """The channel layer (Redis) did not take the message within its timeout: fail closed,
    nothing was sent (``closed_stale``: rows of dead workers closed before that)."""

    def __init__(self, closed_stale: int = 0) -> None:
        super().__init__("the channel layer did not answer")
        self.closed_stale = closed_stale


async def send_terminate(channel_names: Iterable[str], *, by: str) -> None:
    layer = get_channel_layer()
    if not redis_pools.may_try("channel layer send"):
        raise ControlUnavailable()  # Redis is down: fail closed at once
    try:
        # Bounded as a whole by the Redis layer's timeout (RELAY_REDIS_TIMEOUT_SECONDS).
        async with asyncio.timeout(getattr(layer, "timeout", None)):
            for name in channel_names:
                await layer.send(name, {"type": TERMINATE, "by": by})
    except Exception as exc:
        redis_pools.unreachable("channel layer send (terminate)", exc)
        raise ControlUnavailable() from exc


async def broadcast_terminate(*, by: str) -> None:
    await get_channel_layer().group_send(SESSIONS_GROUP, {"type": TERMINATE, "by": by})


def terminate_sessions(sessions: Iterable[RealtimeSession], *, by: str) -> int:
    """End these sessions wherever they live; rows of dead workers are closed directly.

    Returns how many live sessions were asked to end. One event loop for the whole batch:
    async_to_sync per message would open a loop and a Redis connection per call. Raises
    ``ControlUnavailable`` when the channel layer does not answer in time.
    """
    live: list[str] = []
    Status = RealtimeSession.Status
    # A stale row's worker is gone; a detached session has no worker until its client resumes
    # it: closing the row ends it (a resume then finds it terminated).
    dead: dict[str, list[Any]] = {"terminated_stale": [], "terminated": []}
    for session in sessions:
        if session.status == Status.STALE:
            dead["terminated_stale"].append(session.id)
        elif session.status == Status.DETACHED:
            dead["terminated"].append(session.id)
        elif session.is_open and session.channel_name:
            live.append(session.channel_name)
    for reason, ids in dead.items():
        if ids:
            RealtimeSession.objects.filter(id__in=ids).update(
                status=Status.CLOSED,
                ended_at=timezone.now(),
                close_reason=reason,
                ended_by=by[:150],
            )
    if live:
        try:
            async_to_sync(send_terminate)(live, by=by)
        except ControlUnavailable as exc:
            exc.closed_stale = sum(map(len, dead.values()))
            raise
    return len(live)
