"""Sessions across workers: presence rows, the reaper, and control over the channel layer.

Each session owns a ``Presence``: it writes the session's row, heartbeats it with the
in-memory counters every ``RELAY_HEARTBEAT_SECONDS`` (never on the per-frame path), and
closes it. Each worker process runs one reaper that marks rows of dead workers ``stale``.
Control goes through the channel layer: a consumer is addressed by its ``channel_name``
(stored in its row), and every consumer joins ``SESSIONS_GROUP`` for broadcasts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import DatabaseError, transaction
from django.utils import timezone

from realtime.compat.cancellation import db_call
from realtime.guards.session_limits import Claim, concurrency_refusals
from realtime.kernel.config import RelayConfig
from realtime.kernel.counters import SessionCounters
from realtime.kernel.endings import TOO_MANY_SESSIONS
from realtime.models import ConversationEntry, RealtimeSession
from realtime.ops import redis_conn
from realtime.records.conversation import Conversation, Entry

if TYPE_CHECKING:
    from realtime.ops.runtime import Runtime

log = logging.getLogger("realtime.ops.presence")

SESSIONS_GROUP = "realtime_sessions"
TERMINATE = "realtime.terminate"
STALE_AFTER_BEATS = 2  # rows silent this many intervals are stale; the reaper runs twice per beat


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


class GroupCommit:
    """Database calls of many sessions gathered into one call on the database thread: every
    call that arrives while one runs goes into the next. A connect storm (or the heartbeats
    of sessions that started together) then costs a few thread hops and commits instead of
    one per session (Channels runs every database call of a worker on one thread)."""

    def __init__(self) -> None:
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._running: asyncio.Task[None] | None = None

    async def _submit(self, item: Any) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._drain())
        outcome = await asyncio.shield(future)  # a cancelled waiter leaves the batch alone
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _execute(self, items: list[Any]) -> list[Any]:
        """On the database thread: one outcome (a result or an exception) per item."""
        raise NotImplementedError

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                outcomes = await db_call(self._execute, items=[item for item, _ in batch])
            except BaseException as exc:  # the whole call failed: every waiter learns it
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)


class Registrar(GroupCommit):
    """New sessions' rows and their concurrency check, per batch (``register_sessions``)."""

    async def register(self, session_id: Any, fields: dict[str, Any], config: RelayConfig) -> Any:
        """None when admitted, else the refusal message; raises DatabaseError."""
        return await self._submit((session_id, fields, config))

    def _execute(self, items: list[Any]) -> list[Any]:
        return register_sessions(sessions=items)


class PresenceWrites(GroupCommit):
    """Rows going live, heartbeats, conversation entries and closes of every session of a
    worker, written in one transaction per batch."""

    async def write(self, func: Callable[..., None], **kwargs: Any) -> None:
        """Raises DatabaseError when this write failed."""
        await self._submit((func, kwargs))

    def _execute(self, items: list[Any]) -> list[Any]:
        try:
            with transaction.atomic():
                for func, kwargs in _merge_going_live(items):
                    func(**kwargs)
            return [None] * len(items)
        except DatabaseError:
            pass  # nothing was written: each write once more on its own, to learn which failed
        outcomes: list[Any] = []
        for func, kwargs in items:
            try:
                func(**kwargs)
                outcomes.append(None)
            except DatabaseError as exc:
                outcomes.append(exc)
        return outcomes


def _merge_going_live(items: list[Any]) -> list[Any]:
    """Consecutive rows going live with the same counters become one UPDATE: the sessions of
    a connect storm go live together, and one statement for them all keeps the database
    thread (and the GIL it holds while Django builds SQL) short. The order of writes is kept."""
    merged: list[Any] = []
    for func, kwargs in items:
        if func is not session_live:
            merged.append((func, kwargs))
            continue
        last = merged[-1] if merged else (None, {})
        if last[0] is sessions_live and last[1]["counters"] == kwargs["counters"]:
            last[1]["session_ids"].append(kwargs["session_id"])
        else:
            ids, counters = [kwargs["session_id"]], kwargs["counters"]
            merged.append((sessions_live, {"session_ids": ids, "counters": counters}))
    return merged


def sessions_live(*, session_ids: list[Any], counters: dict[str, int]) -> None:
    now = timezone.now()
    RealtimeSession.objects.filter(id__in=session_ids).live().update(
        status=RealtimeSession.Status.LIVE, ready_at=now, last_seen_at=now, **counters
    )


def session_live(*, session_id: Any, counters: dict[str, int]) -> None:
    sessions_live(session_ids=[session_id], counters=counters)


def session_heartbeat(*, session_id: Any, counters: dict[str, int]) -> None:
    # A stale row whose worker turns out to be alive (e.g. after a long GC pause or a DB
    # outage) comes back to life on its next beat.
    RealtimeSession.objects.filter(
        id=session_id, status__in=[*RealtimeSession.OPEN_STATUSES, RealtimeSession.Status.STALE]
    ).update(last_seen_at=timezone.now(), **counters)


def save_entries(*, session_id: Any, entries: list[Entry]) -> None:
    """Write gathered conversation entries in one insert (heartbeat and close)."""
    if entries:
        ConversationEntry.objects.bulk_create(
            ConversationEntry(
                session_id=session_id,
                seq=e.seq,
                at=e.at,
                role=e.role,
                kind=e.kind,
                text=e.text,
                item_id=e.item_id[:128],
                data=e.data,
            )
            for e in entries
        )


def session_close(
    *, session_id: Any, code: int | None, reason: str, ended_by: str, counters: dict[str, int]
) -> None:
    now = timezone.now()
    RealtimeSession.objects.filter(id=session_id).exclude(
        status=RealtimeSession.Status.CLOSED
    ).update(
        status=RealtimeSession.Status.CLOSED,
        ended_at=now,
        last_seen_at=now,
        close_code=code,
        close_reason=reason[:64],
        ended_by=ended_by[:150],
        **counters,
    )


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


# ---------------------------------------------------------------------------------------------
# Control over the channel layer
# ---------------------------------------------------------------------------------------------


class ControlUnavailable(Exception):
    """The channel layer (Redis) did not take the message within its timeout: fail closed,
    nothing was sent (``closed_stale``: rows of dead workers closed before that)."""

    def __init__(self, closed_stale: int = 0) -> None:
        super().__init__("the channel layer did not answer")
        self.closed_stale = closed_stale


async def send_terminate(channel_names: Iterable[str], *, by: str) -> None:
    layer = get_channel_layer()
    if not redis_conn.may_try("channel layer send"):
        raise ControlUnavailable()  # Redis is down: fail closed at once
    try:
        # Bounded as a whole by the Redis layer's timeout (RELAY_REDIS_TIMEOUT_SECONDS).
        async with asyncio.timeout(getattr(layer, "timeout", None)):
            for name in channel_names:
                await layer.send(name, {"type": TERMINATE, "by": by})
    except Exception as exc:
        redis_conn.unreachable("channel layer send (terminate)", exc)
        raise ControlUnavailable() from exc


async def broadcast_terminate(*, by: str) -> None:
    await get_channel_layer().group_send(SESSIONS_GROUP, {"type": TERMINATE, "by": by})


def terminate_sessions(sessions: Iterable[RealtimeSession], *, by: str) -> int:
    """End these sessions wherever they live; rows of dead workers are closed directly.

    Returns how many live sessions were asked to end. One event loop for the whole batch:
    async_to_sync per message would open a loop and a Redis connection per call. Raises
    ``ControlUnavailable`` when the channel layer does not answer in time.
    """
    live, dead = [], []
    for session in sessions:
        if session.status == RealtimeSession.Status.STALE:
            dead.append(session.id)
        elif session.is_open and session.channel_name:
            live.append(session.channel_name)
    if dead:
        RealtimeSession.objects.filter(id__in=dead).update(
            status=RealtimeSession.Status.CLOSED,
            ended_at=timezone.now(),
            close_reason="terminated_stale",
            ended_by=by[:150],
        )
    if live:
        try:
            async_to_sync(send_terminate)(live, by=by)
        except ControlUnavailable as exc:
            exc.closed_stale = len(dead)
            raise
    return len(live)


# ---------------------------------------------------------------------------------------------
# Per-session presence and the per-worker reaper
# ---------------------------------------------------------------------------------------------


class Presence:
    """The registry row of one session. Database trouble never ends a session."""

    def __init__(
        self,
        session_id: Any,
        counters: SessionCounters,
        runtime: Runtime,
        conversation: Conversation | None = None,
    ) -> None:
        self.session_id = session_id
        self.stats = counters
        self.runtime = runtime
        self.conversation = conversation or Conversation(enabled=False)
        self.opened = False

    def counters(self) -> dict[str, int]:
        return self.stats.columns()

    async def _call(self, func: Any, **kwargs: Any) -> bool:
        try:
            await self.runtime.presence_writes.write(func, **kwargs)
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
        self.runtime.ensure_reaper()
        interval = self.runtime.config.heartbeat_seconds
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
                await self._call(session_live, session_id=self.session_id, counters=self.counters())
            else:
                await self._call(
                    session_heartbeat, session_id=self.session_id, counters=self.counters()
                )
            await self._save_entries()
            if on_beat is not None:
                await on_beat()

    async def _save_entries(self) -> None:
        entries = self.conversation.take()
        if entries and not await self._call(
            save_entries, session_id=self.session_id, entries=entries
        ):
            log.warning("session %s: %d conversation entries lost", self.session_id, len(entries))

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
        )


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
        except DatabaseError as exc:
            log.warning("reaper: %s", exc)
