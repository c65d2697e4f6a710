"""The per-worker reaper: rows of sessions whose worker stopped heartbeating become
``stale``; detached sessions nobody resumed within the resume window are closed
(``resume_expired``); a worker that starts closes the rows an earlier process with its id left
open."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError
from django.utils import timezone

from realtime.compat.cancellation import db_call
from realtime.models import RealtimeSession
from realtime.ops.presence import RESUME_EXPIRED, worker_id

if TYPE_CHECKING:
    from realtime.ops.runtime import Runtime

log = logging.getLogger("realtime.ops.reaper")

STALE_AFTER_BEATS = 2  # rows silent this many intervals are stale; the reaper runs twice per beat


def reap_stale(*, heartbeat_seconds: float, now: Any = None) -> int:
    """Mark open rows whose worker stopped heartbeating as stale; return how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=heartbeat_seconds * STALE_AFTER_BEATS)
    count = RealtimeSession.objects.silent_since(cutoff).update(
        status=RealtimeSession.Status.STALE, ended_at=now, close_reason="worker_gone"
    )
    if count:
        log.warning("marked %d session(s) stale: their worker stopped heartbeating", count)
    return count


def expire_detached(*, resume_seconds: float, now: Any = None) -> int:
    """Close the rows of detached sessions whose resume window has passed; return how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=resume_seconds)
    count = RealtimeSession.objects.filter(
        status=RealtimeSession.Status.DETACHED, last_seen_at__lt=cutoff
    ).update(status=RealtimeSession.Status.CLOSED, ended_at=now, close_reason=RESUME_EXPIRED)
    if count:
        log.info("closed %d detached session(s): nobody resumed them in time", count)
    return count


def close_left_behind(*, worker: str, before: Any) -> int:
    """A worker that starts closes rows an earlier process with its id left open (rows of
    this worker id that started before this process did)."""
    count = (
        RealtimeSession.objects.filter(worker_id=worker, started_at__lt=before)
        .exclude(status=RealtimeSession.Status.CLOSED)
        .update(
            status=RealtimeSession.Status.CLOSED,
            ended_at=timezone.now(),
            close_reason="worker_restarted",
        )
    )
    if count:
        log.warning("closed %d session row(s) left behind by a previous %s", count, worker)
    return count


async def reap_forever(runtime: Runtime) -> None:
    """The per-worker reaper: rows an earlier life of this worker left, then stale rows."""
    try:
        await db_call(close_left_behind, worker=worker_id(), before=runtime.started_at)
    except DatabaseError as exc:
        log.warning("could not close rows left behind: %s", exc)
    while True:
        interval = runtime.config.heartbeat_seconds
        await asyncio.sleep(interval / 2)
        try:
            await db_call(reap_stale, heartbeat_seconds=interval)
            await db_call(expire_detached, resume_seconds=runtime.config.resume_seconds)
        except DatabaseError as exc:
            log.warning("reaper: %s", exc)
