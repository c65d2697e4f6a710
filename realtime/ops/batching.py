"""Database writes of many sessions, gathered: one call on the database thread, and one
transaction, per batch (new sessions' rows and their concurrency check; rows going live,
heartbeats, conversation entries and closes)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, transaction

from realtime.compat.cancellation import db_call
from realtime.kernel.config import RelayConfig
from realtime.ops import presence as rows


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
            # Its own context, not the submitter's: a context inside a database call (a
            # SIGTERM's drain may run in one: ``realtime.ops.drain``) would make asgiref
            # refuse every database call of the batch ("would deadlock").
            loop = asyncio.get_running_loop()
            self._running = loop.create_task(self._drain(), context=contextvars.Context())
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
        return rows.register_sessions(sessions=items)


class PresenceWrites(GroupCommit):
    """Rows going live, heartbeats, conversation entries and closes of every session of a
    worker, written in one transaction per batch."""

    async def write(self, func: Callable[..., Any], **kwargs: Any) -> Any:
        """What ``func`` returned (None for rows going live); raises DatabaseError when this
        write failed."""
        return await self._submit((func, kwargs))

    def _execute(self, items: list[Any]) -> list[Any]:
        try:
            with transaction.atomic():
                results: list[Any] = [None] * len(items)
                for indexes, func, kwargs in _merge_going_live(items):
                    result = func(**kwargs)
                    if func is not rows.sessions_live:
                        results[indexes[0]] = result
            return results
        except DatabaseError:
            pass  # nothing was written: each write once more on its own, to learn which failed
        outcomes: list[Any] = []
        for func, kwargs in items:
            try:
                result = func(**kwargs)
                outcomes.append(None if func is rows.session_live else result)
            except DatabaseError as exc:
                outcomes.append(exc)
        return outcomes


def _merge_going_live(items: list[Any]) -> list[Any]:
    """Consecutive rows going live with the same counters become one UPDATE: the sessions of
    a connect storm go live together, and one statement for them all keeps the database
    thread (and the GIL it holds while Django builds SQL) short. The order of writes is kept.
    Each write comes with the indexes of the items it stands for."""
    merged: list[Any] = []
    for index, (func, kwargs) in enumerate(items):
        if func is not rows.session_live:
            merged.append(([index], func, kwargs))
            continue
        last = merged[-1] if merged else ([], None, {})
        if last[1] is rows.sessions_live and last[2]["counters"] == kwargs["counters"]:
            last[0].append(index)
            last[2]["session_ids"].append(kwargs["session_id"])
        else:
            ids, counters = [kwargs["session_id"]], kwargs["counters"]
            merged.append(([index], rows.sessions_live, {"session_ids": ids, "counters": counters}))
    return merged
