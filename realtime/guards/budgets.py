"""Per-user budgets, across workers: connects per minute, session-seconds and tokens per day.

Checked at admission, before any upstream work (and before the session's registry row, so a
refused connect costs one Redis round trip and, with daily budgets, two small queries):

- **connects per minute** (``RELAY_MAX_CONNECTS_PER_MINUTE``; by default 20 with a paid
  upstream, off with the simulator): a moving window in Redis (``realtime/guards/throttle.py``),
  per user, or per client address for anonymous clients. Refused: ``too_many_connects``
  (4006), with the seconds until a slot frees.
- **session-seconds and tokens per UTC day** (``RELAY_USER_DAILY_SECONDS``,
  ``RELAY_USER_DAILY_TOKENS``; off by default): summed from the user's ``RealtimeSession``
  rows (the registry every worker writes): wall-clock time of every session today (open ones
  up to now, the part after midnight for one that began before), and input + output tokens.
  Refused: ``budget_exhausted`` (4007), saying when it resets (00:00 UTC).

The phone webhook asks the same questions ahead of a call's stream (``refusal_ahead``,
counting nothing), so that a refused caller hears why (docs/phone.md).

A staff member can override any of the three for one user (``UserBudget``, in the admin:
empty = the deployment's setting, 0 = no limit). The remaining budget goes to the client in
``session_info`` (``budget``) and is shown in the admin.

**During a session** the daily budget is enforced too, after **every answer** (its usage
counted: ``response.done`` on the Realtime API, the derived end of an answer and each
delegated backend response on GPT-Live) and at every heartbeat (``RELAY_HEARTBEAT_SECONDS``):
the session's row is written with its counters, the sums are taken again, and a session
whose user has reached a limit ends with ``budget_exhausted``. While the check after an
answer runs, the session sends nothing upstream (``session/answer_budget.py``), so no new
answer starts on a spent budget: a session overruns by at most the answer that crossed the
limit (seconds: by at most one answer or one heartbeat). With several concurrent sessions
the sums include all of them (each writes its row at every answer and heartbeat), so a user
overruns by at most one answer per open session. The largest overrun is in docs/security.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.db.models import DurationField, ExpressionWrapper, F, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from realtime.compat.cancellation import db_call
from realtime.guards import session_limits
from realtime.guards.throttle import Limiter
from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.endings import Ending, SessionEnded
from realtime.models import RealtimeSession, UserBudget

log = logging.getLogger("realtime.guards.budgets")

CONNECT_WINDOW_S = 60


@dataclass(frozen=True)
class Limits:
    connects_per_minute: int
    daily_seconds: int
    daily_tokens: int

    @property
    def daily(self) -> bool:
        return bool(self.daily_seconds or self.daily_tokens)


@dataclass(frozen=True)
class Usage:
    seconds: int
    tokens: int


@dataclass(frozen=True)
class Budget:
    """A user's limits and what today's sessions used, at one moment."""

    limits: Limits
    usage: Usage
    resets_at: datetime

    @property
    def seconds_left(self) -> int | None:
        if not self.limits.daily_seconds:
            return None
        return max(0, self.limits.daily_seconds - self.usage.seconds)

    @property
    def tokens_left(self) -> int | None:
        if not self.limits.daily_tokens:
            return None
        return max(0, self.limits.daily_tokens - self.usage.tokens)

    def exhausted(self, now: datetime) -> Ending | None:
        spent = []
        if self.seconds_left == 0:
            spent.append(f"{self.limits.daily_seconds} session-seconds")
        if self.tokens_left == 0:
            spent.append(f"{self.limits.daily_tokens} tokens")
        if not spent:
            return None
        return endings.BUDGET_EXHAUSTED.because(
            f"Your daily budget of {' and '.join(spent)} is used up; it resets at 00:00 UTC "
            f"(in {_duration(self.resets_at - now)})."
        )


def _duration(delta: timedelta) -> str:
    minutes = max(1, int(delta.total_seconds() + 59) // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


# ---------------------------------------------------------------------------------------------
# The database side (sync: run through db_call)
# ---------------------------------------------------------------------------------------------


def limits_for(config: RelayConfig, user_id: int | None) -> Limits:
    """The deployment's limits, with this user's staff override (if any) applied."""
    limits = Limits(config.connects_per_minute, config.user_daily_seconds, config.user_daily_tokens)
    if user_id is None:
        return limits
    override = UserBudget.objects.filter(user_id=user_id).first()
    if override is None:
        return limits
    return Limits(
        _pick(override.connects_per_minute, limits.connects_per_minute),
        _pick(override.daily_seconds, limits.daily_seconds),
        _pick(override.daily_tokens, limits.daily_tokens),
    )


def _pick(override: int | None, default: int) -> int:
    return default if override is None else override


def usage_today(user_id: int, now: datetime) -> Usage:
    """Session-seconds and tokens of this user's sessions today, across all workers."""
    start = day_start(now)
    rows = RealtimeSession.objects.filter(
        user_id=user_id, started_at__gte=start - timedelta(days=1), started_at__lte=now
    ).exclude(ended_at__lt=start)
    tokens = rows.aggregate(total=Coalesce(Sum(F("input_tokens") + F("output_tokens")), Value(0)))[
        "total"
    ]
    closed = rows.exclude(ended_at=None).aggregate(
        spent=Sum(
            ExpressionWrapper(
                F("ended_at") - Greatest(F("started_at"), Value(start)),
                output_field=DurationField(),
            )
        )
    )["spent"] or timedelta(0)
    open_starts = rows.filter(ended_at=None).values_list("started_at", flat=True)
    running = sum((now - max(started, start) for started in open_starts), timedelta(0))
    return Usage(int((closed + running).total_seconds()), int(tokens))


def budget_for(config: RelayConfig, user_id: int, now: datetime) -> Budget:
    limits = limits_for(config, user_id)
    usage = usage_today(user_id, now) if limits.daily else Usage(0, 0)
    return Budget(limits, usage, day_start(now) + timedelta(days=1))


# ---------------------------------------------------------------------------------------------
# Admission and heartbeats
# ---------------------------------------------------------------------------------------------


async def admit(
    *, scope: dict[str, Any], limiter: Limiter, config: RelayConfig, user: Any
) -> Budget | None:
    """Refuse (``SessionEnded``) a connect over a budget; else the user's budget (or None
    for anonymous clients and users without limits)."""
    user_id = user.pk if user is not None else None
    now = timezone.now()
    try:
        if user_id is None:
            limits = limits_for(config, None)
            budget = None
        else:
            budget = await db_call(budget_for, config=config, user_id=user_id, now=now)
            limits = budget.limits
    except DatabaseError:
        raise SessionEnded(endings.REGISTRY_UNAVAILABLE) from None
    per_minute = limits.connects_per_minute
    who = connect_key(user_id, _client_host(scope))
    verdict = await limiter.ahit(per_minute, CONNECT_WINDOW_S, "connect", who)
    if not verdict.allowed:
        raise SessionEnded(_too_many_connects(per_minute, verdict.retry_after))
    if budget is not None:
        ending = budget.exhausted(now)
        if ending is not None:
            raise SessionEnded(ending)
        if not (limits.daily or per_minute):
            return None
    return budget


def _too_many_connects(per_minute: int, retry_after: int) -> Ending:
    return endings.TOO_MANY_CONNECTS.because(
        f"More than {per_minute} connects in a minute; try again in {retry_after} s."
    )


def connect_key(user_id: int | None, client_host: str) -> str:
    """What connects a minute are counted per: the user, else the client's address."""
    return f"user:{user_id}" if user_id is not None else f"addr:{client_host}"


async def refusal_ahead(
    *, config: RelayConfig, limiter: Limiter, user: Any, client_host: str
) -> Ending | None:
    """The ending ``admit`` and the concurrency limits would refuse a connect with now, asked
    ahead of it (the phone webhook, which can still say why): the daily budget, the connects
    a minute, the open sessions. Nothing is counted; what cannot be checked (the database is
    down) is left to the connect's own admission."""
    user_id = user.pk if user is not None else None
    now = timezone.now()
    try:
        if user_id is None:
            limits = limits_for(config, None)
        else:
            budget = await db_call(budget_for, config=config, user_id=user_id, now=now)
            ending = budget.exhausted(now)
            if ending is not None:
                return ending
            limits = budget.limits
    except DatabaseError:
        return None
    per_minute = limits.connects_per_minute
    who = connect_key(user_id, client_host)
    verdict = await limiter.ablocked(per_minute, CONNECT_WINDOW_S, "connect", who)
    if not verdict.allowed:
        return _too_many_connects(per_minute, verdict.retry_after)
    try:
        over = await db_call(session_limits.open_sessions_over, config=config, user_id=user_id)
    except DatabaseError:
        return None
    return endings.TOO_MANY_SESSIONS.because(over) if over else None


def heartbeat(
    admitted: Any,
    join_groups: Callable[[], Awaitable[None]],
    session: Callable[[], Any],
) -> Callable[[], Awaitable[None]]:
    """The session's heartbeat callback: rejoin the broadcast groups, then end the session
    if its user's daily budget ran out (the row was written just before)."""
    budget: Budget | None = getattr(admitted, "budget", None)

    async def beat() -> None:
        await join_groups()
        if budget is None or not budget.limits.daily or admitted.user is None:
            return
        now = timezone.now()
        try:
            usage = await db_call(usage_today, user_id=admitted.user.pk, now=now)
        except DatabaseError as exc:
            log.warning("budget of session %s not checked: %s", admitted.session_id, exc)
            return
        ending = Budget(budget.limits, usage, day_start(now) + timedelta(days=1)).exhausted(now)
        current = session()
        if ending is not None and current is not None:
            log.info("session %s: daily budget used up", admitted.session_id)
            await current.end(ending)

    return beat


def usage_after_answer(
    *, session_id: Any, counters: dict[str, int], user_id: int, now: datetime
) -> Usage:
    """Write this session's counters to its row, then sum the user's usage today (the
    other sessions' rows are as of their last answer or heartbeat)."""
    RealtimeSession.objects.filter(id=session_id).update(**counters)
    return usage_today(user_id, now)


def answer_check(admitted: Any) -> Callable[[dict[str, int]], Awaitable[Ending | None]] | None:
    """The check a session runs after every answer (``session/answer_budget.py``): the
    ending when its user's daily budget is used up; None (no check) without daily limits."""
    budget: Budget | None = getattr(admitted, "budget", None)
    if budget is None or not budget.limits.daily or admitted.user is None:
        return None
    limits, user_id, session_id = budget.limits, admitted.user.pk, admitted.session_id

    async def check(counters: dict[str, int]) -> Ending | None:
        now = timezone.now()
        try:
            usage = await db_call(
                usage_after_answer,
                session_id=session_id,
                counters=counters,
                user_id=user_id,
                now=now,
            )
        except DatabaseError as exc:  # the presence guard ends a session without its row
            log.warning("budget of session %s not checked after an answer: %s", session_id, exc)
            return None
        return Budget(limits, usage, day_start(now) + timedelta(days=1)).exhausted(now)

    return check


def _client_host(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("?", 0)
    return str(client[0])
