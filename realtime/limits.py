"""Limits that hold across workers (the database) and per session (clocks, rates)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.db.models import Q

from realtime import endings
from realtime.config import RelayConfig
from realtime.endings import Ending
from realtime.models import RealtimeSession


def concurrency_refusal(*, session_id: Any, config: RelayConfig) -> str | None:
    """Is this (already registered) session over a concurrency limit? Checked across workers.

    Every open session has a row; a session is admitted when fewer than the limit of open
    rows precede its own in (started_at, id) order. Two sessions racing for the last slot
    cannot both win: whichever row sorts first is admitted, whatever the timing.
    """
    me = RealtimeSession.objects.filter(id=session_id).values("started_at", "user_id").first()
    if me is None:
        return None
    earlier = RealtimeSession.objects.live().filter(
        Q(started_at__lt=me["started_at"]) | Q(started_at=me["started_at"], id__lt=session_id)
    )
    if config.max_sessions_total and earlier.count() >= config.max_sessions_total:
        return (
            f"The relay is at its limit of {config.max_sessions_total} concurrent sessions; "
            "try again later."
        )
    per_user = config.max_sessions_per_user
    if per_user and me["user_id"] is not None:
        if earlier.filter(user_id=me["user_id"]).count() >= per_user:
            return f"You already have {per_user} open session(s); close one first."
    return None


class MessageRate:
    """A token bucket: ``per_minute`` messages a minute, bursts up to that many."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.rate = per_minute / 60.0
        self.stamp = time.monotonic()

    def allow(self) -> bool:
        if self.capacity == 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


async def session_clock(
    *,
    config: RelayConfig,
    last_activity: Callable[[], float],
    warn: Callable[[int], Awaitable[None]],
    end: Callable[[Ending], Awaitable[None]],
) -> None:
    """Ends the session at its maximum length (warning first) or after client silence."""
    started = time.monotonic()
    limit = config.max_session_seconds
    warn_at = limit - config.session_warning_seconds if limit else 0
    warned = not (limit and config.session_warning_seconds and warn_at > 0)
    idle = config.idle_timeout_seconds
    step = max(0.05, min(5.0, (idle or 20) / 4, (limit or 20) / 4))
    while True:
        await asyncio.sleep(step)
        now = time.monotonic()
        if limit and now - started >= limit:
            await end(
                endings.SESSION_TIMEOUT.because(
                    f"The session reached its maximum length of {limit} s; reconnect to continue."
                )
            )
            return
        if not warned and now - started >= warn_at:
            warned = True
            await warn(int(limit - (now - started)))
        if idle and now - last_activity() >= idle:
            await end(
                endings.IDLE_TIMEOUT.because(
                    f"No audio or message from the client for {idle} s; session closed."
                )
            )
            return
