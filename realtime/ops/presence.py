"""Sessions across workers: each session's row in the registry, and its presence.

Each session owns a ``Presence``: it writes the session's row, heartbeats it with the
in-memory counters every ``RELAY_HEARTBEAT_SECONDS`` (never on the per-frame path), and
closes it. The writes of a worker's sessions go to the database in batches
(``realtime.ops.batching``); the reaper (``realtime.ops.reaper``) marks rows of dead workers
``stale``; terminate goes through the channel layer (``realtime.ops.control``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError
from django.db.models import Case, Value, When
from django.utils import timezone

from realtime.guards.session_limits import Claim, concurrency_refusals
from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.counters import SessionCounters
from realtime.kernel.endings import TOO_MANY_SESSIONS, SessionEnded
from realtime.models import RealtimeSession
from realtime.ops import metrics
from realtime.records.conversation import Conversation
from realtime.records.entries import save_entries

if TYPE_CHECKING:
    from realtime.ops.batching import PresenceWrites

log = logging.getLogger("realtime.ops.presence")


def worker_id() -> str:
    """host:pid of this process (computed on call: safe across fork)."""
    return f"{socket.gethostname()}:{os.getpid()}"


# ---------------------------------------------------------------------------------------------
# Services (sync; called through database_sync_to_async from consumers)
# ---------------------------------------------------------------------------------------------


def session_open(*, session_id: Any, **fields: Any) -> None:
    now = timezone.now()
    RealtimeSession.objects.create(
        id=session_id, worker_id=worker_id(), started_at=now, last_seen_at=now, **fields
    )


def register_sessions(*, sessions: list[tuple[Any, dict[str, Any], RelayConfig]]) -> list[Any]:
    """Register several sessions in one database call: the rows are written (the limits count
    rows; one insert for all), then checked against the concurrency limits; refused rows are
    closed at once. Returns, per session, None (admitted), a refusal message, or the
    DatabaseError."""
    worker, claims, rows = worker_id(), [], []
    for session_id, fields, config in sessions:
        now = timezone.now()
        rows.append(
            RealtimeSession(
                id=session_id, worker_id=worker, started_at=now, last_seen_at=now, **fields
            )
        )
        user = fields.get("user")
        claims.append(Claim(session_id, now, user.pk if user is not None else None, config))
    try:
        RealtimeSession.objects.bulk_create(rows)
        refused = concurrency_refusals(claims)
        if refused:
            RealtimeSession.objects.filter(id__in=list(refused)).update(
                status=RealtimeSession.Status.CLOSED,
                ended_at=timezone.now(),
                last_seen_at=timezone.now(),
                close_code=TOO_MANY_SESSIONS.close_code,
                close_reason=TOO_MANY_SESSIONS.code,
            )
    except DatabaseError as exc:
        return [exc] * len(sessions)
    return [refused.get(session_id) for session_id, _, _ in sessions]


def sessions_live(*, session_ids: list[Any], counters: dict[str, int]) -> None:
    now = timezone.now()
    RealtimeSession.objects.filter(id__in=session_ids).attached().update(
        status=RealtimeSession.Status.LIVE, ready_at=now, last_seen_at=now, **counters
    )


def session_live(*, session_id: Any, counters: dict[str, int]) -> None:
    sessions_live(session_ids=[session_id], counters=counters)


def _served_by(rows: Any, channel_name: str) -> Any:
    """The row as long as this connection serves it (a resume elsewhere moves it)."""
    return rows.filter(channel_name=channel_name) if channel_name else rows


def session_heartbeat(
    *, session_id: Any, counters: dict[str, int], channel_name: str = ""
) -> ClosedRow | None:
    """Write the row's beat and counters; when there is no open row to write, what became of
    it (the session must then end: ``Presence``)."""
    now = timezone.now()
    rows = RealtimeSession.objects.filter(id=session_id)
    if _served_by(rows.attached(), channel_name).update(last_seen_at=now, **counters):
        return None
    if channel_name and rows.live().exclude(channel_name=channel_name).exists():
        return ClosedRow(reason=endings.SESSION_RESUMED_ELSEWHERE.code)
    # A stale row whose session turns out to be alive (its beats came late: a long pause, a
    # database outage) comes back to life: open again, so the limits count it again.
    Status = RealtimeSession.Status
    rows = _served_by(rows, channel_name)
    revived = Case(When(ready_at=None, then=Value(Status.CONNECTING)), default=Value(Status.LIVE))
    if rows.filter(status=Status.STALE).update(
        status=revived, ended_at=None, close_reason="", last_seen_at=now, **counters
    ):
        log.info("session %s: its stale row is open again", session_id)
        return None
    row = rows.values_list("close_reason", "ended_by").first()
    return ClosedRow(deleted=True) if row is None else ClosedRow(reason=row[0], ended_by=row[1])


@dataclass(frozen=True)
class ClosedRow:
    """A session's row found closed (or deleted) under it."""

    reason: str = ""
    ended_by: str = ""
    deleted: bool = False

    def __str__(self) -> str:
        if self.deleted:
            return "its registry row was deleted"
        by = f" by {self.ended_by}" if self.ended_by else ""
        return f"its registry row was closed ({self.reason or '?'}{by})"

    @property
    def ending(self) -> endings.Ending:
        if self.reason.startswith("terminated"):  # an administrator's terminate
            return endings.TERMINATED
        if self.reason == endings.SESSION_RESUMED_ELSEWHERE.code:
            return endings.SESSION_RESUMED_ELSEWHERE
        return endings.TERMINATED.because(
            "The relay closed this session's record; reconnect to continue."
        )


def session_close(
    *,
    session_id: Any,
    code: int | None,
    reason: str,
    ended_by: str,
    counters: dict[str, int],
    channel_name: str = "",
) -> None:
    now = timezone.now()
    rows = _served_by(RealtimeSession.objects.filter(id=session_id), channel_name)
    if not rows.exclude(status=RealtimeSession.Status.CLOSED).update(
        status=RealtimeSession.Status.CLOSED,
        ended_at=now,
        last_seen_at=now,
        close_code=code,
        close_reason=reason[:64],
        ended_by=ended_by[:150],
        **counters,
    ):
        # Closed under the session (e.g. terminated while stale): who closed it and why stay;
        # what the session used until it noticed still counts (usage, daily budgets).
        rows.update(ended_at=now, last_seen_at=now, **counters)


def session_detach(*, session_id: Any, counters: dict[str, int], channel_name: str = "") -> bool:
    """The session waits for its client: its row says ``detached`` (still counted by the
    limits and budgets; no worker beats for it; the reaper closes it when the resume window
    passes). False when this connection no longer serves the row."""
    now = timezone.now()
    rows = _served_by(RealtimeSession.objects.filter(id=session_id).attached(), channel_name)
    return bool(rows.update(status=RealtimeSession.Status.DETACHED, last_seen_at=now, **counters))


def session_reclaim(*, session_id: Any, fields: dict[str, Any], worker: str = "") -> str | None:
    """A resume: this worker's connection serves the session's row from now on (whatever its
    state: detached, still attached elsewhere, or stale after its worker died). None when
    reclaimed, else why it cannot be (the row was closed: terminated, expired, ended)."""
    now = timezone.now()
    rows = RealtimeSession.objects.filter(id=session_id)
    Status = RealtimeSession.Status
    changed = rows.exclude(status=Status.CLOSED).update(
        status=Status.CONNECTING,
        worker_id=worker or worker_id(),
        channel_name=fields.get("channel_name", ""),
        client_addr=fields.get("client_addr", ""),
        user_agent=fields.get("user_agent", ""),
        ended_at=None,
        close_reason="",
        last_seen_at=now,
    )
    if changed:
        return None
    reason = rows.values_list("close_reason", flat=True).first()
    if reason is None:
        return "the session's record is gone"
    if reason.startswith("terminated"):
        return "an administrator ended the session"
    if reason == RESUME_EXPIRED:
        return "the resume window passed"
    return f"the session has ended ({reason or 'closed'})"


RESUME_EXPIRED = "resume_expired"  # the close reason of a detached session nobody resumed


# ---------------------------------------------------------------------------------------------
# Per-session presence
# ---------------------------------------------------------------------------------------------


class Presence:
    """The registry row of one session, and its guard: the row is what the limits, the daily
    budgets and terminate work through, so a session whose row cannot be written (after
    retrying for up to one heartbeat) ends with ``registry_unavailable``, and one whose row
    was closed under it ends with ``terminated``. Conversation entries that cannot be written
    are counted and logged; they never end a session."""

    def __init__(
        self,
        session_id: Any,
        counters: SessionCounters,
        writes: PresenceWrites,
        heartbeat_seconds: float,
        conversation: Conversation | None = None,
    ) -> None:
        self.session_id = session_id
        self.stats = counters
        self.writes = writes  # the worker's batched writes (Runtime.presence_writes)
        self.heartbeat_seconds = heartbeat_seconds
        self.conversation = conversation or Conversation(enabled=False)
        self.opened = False
        self.channel_name = ""  # the connection serving the row (a resume elsewhere moves it)
        # The upstream sessions that served it, set by a renewal (session/renewal.py).
        self.upstreams: list[dict[str, Any]] = []
        # Its answers' latency (session/latency.py): the row's ``latency`` column when changed.
        self.latency: Callable[[], dict[str, Any] | None] | None = None

    def counters(self) -> dict[str, Any]:
        """The row's counter columns, and its list of upstream sessions once there is one."""
        columns: dict[str, Any] = self.stats.columns()
        if self.upstreams:
            columns["upstreams"] = self.upstreams
        if self.latency is not None:
            latency = self.latency()
            if latency is not None:
                columns["latency"] = latency
        return columns

    async def _call(self, func: Any, **kwargs: Any) -> bool:
        try:
            await self.writes.write(func, **kwargs)
        except DatabaseError as exc:
            log.warning("session %s: registry write failed: %s", self.session_id, exc)
            return False
        return True

    async def open(self, **fields: Any) -> bool:
        """Create the row (before the session may use the upstream: limits count rows)."""
        self.opened = await self._call(session_open, session_id=self.session_id, **fields)
        return self.opened

    async def run(self, ready: asyncio.Event, on_beat: Any = None) -> None:
        """Mark the row live when the session is ready, then heartbeat."""
        interval = self.heartbeat_seconds
        marked_live = False
        while True:
            if marked_live:
                await asyncio.sleep(interval)
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):  # not wait_for: see compat.cancellation
                        await ready.wait()
            if ready.is_set() and not marked_live:
                marked_live = True
                await self._guard(
                    session_live, session_id=self.session_id, counters=self.counters()
                )
            else:
                closed = await self._guard(
                    session_heartbeat,
                    session_id=self.session_id,
                    counters=self.counters(),
                    channel_name=self.channel_name,
                )
                if closed is not None:
                    log.warning("session %s: %s; ending it", self.session_id, closed)
                    raise SessionEnded(closed.ending)
            # Neither may hold the beats up (a hung database is noticed by the next beat).
            await self._within(interval, self._save_entries(), "conversation write")
            if on_beat is not None:
                await self._within(interval, on_beat(), "heartbeat check")

    async def _within(self, seconds: float, work: Awaitable[Any], what: str) -> None:
        try:
            async with asyncio.timeout(seconds):
                await work
        except TimeoutError:
            log.warning("session %s: %s took over %g s; going on", self.session_id, what, seconds)

    async def _guard(self, func: Any, **kwargs: Any) -> Any:
        """Write the row, retrying (every quarter heartbeat, at most 1 s apart) for up to one
        heartbeat; then end the session (``SessionEnded``): the reaper marks a row stale after
        two silent heartbeats, so a session never runs on while its row is not kept."""
        interval = self.heartbeat_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + interval
        pause = min(1.0, interval / 4)
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    return await self.writes.write(func, **kwargs)
            except DatabaseError as exc:
                log.warning("session %s: registry write failed: %s", self.session_id, exc)
            except TimeoutError:
                log.warning("session %s: registry write timed out", self.session_id)
                break
            if loop.time() + pause >= deadline:
                break
            await asyncio.sleep(pause)
        raise SessionEnded(
            endings.REGISTRY_UNAVAILABLE.because(
                "The relay cannot keep this session's record (its database is unavailable), "
                "so its limits cannot hold; the session ends. Try again shortly."
            )
        )

    async def _save_entries(self) -> None:
        entries = self.conversation.take()
        if not entries:
            return
        try:
            dropped = await self.writes.write(
                save_entries, session_id=self.session_id, entries=entries
            )
        except DatabaseError as exc:
            log.warning(
                "session %s: %d conversation entries lost: %s", self.session_id, len(entries), exc
            )
            metrics.count_dropped_entries(len(entries), "unavailable")
            return
        if dropped:
            log.warning(
                "session %s: %d of %d conversation entries refused by the database; the rest "
                "were written",
                self.session_id,
                dropped,
                len(entries),
            )
            metrics.count_dropped_entries(dropped, "rejected")

    async def close(self, *, code: int | None, reason: str, ended_by: str = "") -> None:
        if not self.opened:
            return
        self.conversation.close()
        self.conversation.add("session", "ended", reason, close_code=code, ended_by=ended_by)
        await self._save_entries()
        await self._call(
            session_close,
            session_id=self.session_id,
            code=code,
            reason=reason,
            ended_by=ended_by,
            counters=self.counters(),
            channel_name=self.channel_name,
        )

    async def detach(self, *, code: int | None, reason: str = "") -> bool:
        """The client's socket is gone; the session waits for a resume (its row: detached).
        False when the row could not be written or is no longer this connection's."""
        if not self.opened:
            return False
        self.conversation.add("session", "detached", reason, close_code=code)
        await self._save_entries()
        try:
            return bool(
                await self.writes.write(
                    session_detach,
                    session_id=self.session_id,
                    counters=self.counters(),
                    channel_name=self.channel_name,
                )
            )
        except DatabaseError as exc:
            log.warning("session %s: registry write failed: %s", self.session_id, exc)
            return False
