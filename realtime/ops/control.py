"""Control over sessions across workers, through the channel layer: a consumer is addressed
by its ``channel_name`` (stored in its row), and every consumer joins ``SESSIONS_GROUP`` for
broadcasts. Terminate (the admin, ``manage.py`` commands) comes this way."""

from __future__ import annotations

from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from realtime.models import RealtimeSession

SESSIONS_GROUP = "realtime_sessions"
TERMINATE = "realtime.terminate"


async def send_terminate(channel_names: Iterable[str], *, by: str) -> None:
    layer = get_channel_layer()
    for name in channel_names:
        await layer.send(name, {"type": TERMINATE, "by": by})


async def broadcast_terminate(*, by: str) -> None:
    await get_channel_layer().group_send(SESSIONS_GROUP, {"type": TERMINATE, "by": by})


def terminate_sessions(sessions: Iterable[RealtimeSession], *, by: str) -> int:
    """End these sessions wherever they live; rows of dead workers are closed directly.

    Returns how many live sessions were asked to end. One event loop for the whole batch:
    async_to_sync per message would open a loop and a Redis connection per call.
    """
    live, dead = [], []
    for session in sessions:
        if session.status == RealtimeSession.Status.STALE:
            dead.append(session.id)
        elif session.is_open and session.channel_name:
            live.append(session.channel_name)
    if live:
        async_to_sync(send_terminate)(live, by=by)
    if dead:
        RealtimeSession.objects.filter(id__in=dead).update(
            status=RealtimeSession.Status.CLOSED,
            ended_at=timezone.now(),
            close_reason="terminated_stale",
            ended_by=by[:150],
        )
    return len(live)
