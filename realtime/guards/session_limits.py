"""Limits that hold across workers (the database) and per session (clocks, rates)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count

from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.endings import Ending
from realtime.models import RealtimeSession


@dataclass(frozen=True)
class Claim:
    """A registered session asking for a slot: its row's order key and its limits."""

    session_id: Any
    started_at: Any
    user_id: Any
    config: RelayConfig


def concurrency_refusals(claims: list[Claim]) -> dict[Any, str]:
    """Which of these (already registered) sessions are over a concurrency limit, checked
    across workers: ``{session_id: message}`` for the refused.

    Every open session has a row; a session is admitted when fewer than its limit of open rows
    precede its own in (started_at, id) order, not counting the rows refused before it. Two
    sessions racing for the last slot cannot both win: whichever row sorts first is admitted,
    whatever the timing. A whole batch costs three queries, however many sessions it holds.
    """
    if not claims:
        return {}
    first = min(c.started_at for c in claims)
    open_rows = RealtimeSession.objects.live()
    before = open_rows.filter(started_at__lt=first)
    total_before = before.count()
    users = {c.user_id for c in claims if c.user_id is not None}
    per_user: dict[Any, int] = dict.fromkeys(users, 0)
    if users:
        grouped = before.filter(user_id__in=users).values_list("user_id").annotate(n=Count("id"))
        per_user.update(dict(grouped))
    # Every open row from the first claim on: the claims and other workers' newcomers.
    window = open_rows.filter(started_at__gte=first).order_by("started_at", "id")
    mine = {c.session_id: c for c in claims}
    refused: dict[Any, str] = {}
    for session_id, user_id in window.values_list("id", "user_id"):
        claim = mine.get(session_id)
        if claim is not None:
            message = _over(claim, total_before, per_user.get(user_id, 0))
            if message:
                refused[session_id] = message
                continue  # closed at once: it holds no slot
        total_before += 1
        if user_id in per_user:
            per_user[user_id] += 1
    return refused


def open_sessions_over(config: RelayConfig, user_id: Any) -> str | None:
    """Would one more session (of this user, or anonymous) be over a concurrency limit now?
    Counts the open rows; nothing is registered (a refusal said ahead: the phone webhook)."""
    claim = Claim(None, None, user_id, config)
    open_rows = RealtimeSession.objects.live()
    total = open_rows.count() if config.max_sessions_total else 0
    mine = 0
    if user_id is not None and config.max_sessions_per_user:
        mine = open_rows.filter(user_id=user_id).count()
    return _over(claim, total, mine)


def _over(claim: Claim, total_before: int, user_before: int) -> str | None:
    config = claim.config
    if config.max_sessions_total and total_before >= config.max_sessions_total:
        return (
            f"The relay is at its limit of {config.max_sessions_total} concurrent sessions; "
            "try again later."
        )
    per_user = config.max_sessions_per_user
    if per_user and claim.user_id is not None and user_before >= per_user:
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
    elapsed_s: float = 0.0,
) -> None:
    """Ends the session at its maximum length (warning first) or after client silence.
    ``elapsed_s``: how long the session already lasted (a resumed session's earlier
    connections count towards its maximum length)."""
    started = time.monotonic() - elapsed_s
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
