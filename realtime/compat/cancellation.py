"""Honour a cancellation that an await returned from instead of raising.

CPython 3.11's ``asyncio.wait_for`` returns the inner result when a cancellation arrives
in the same loop step as the inner awaitable finishes (fixed in 3.12, where ``wait_for`` is
built on ``asyncio.timeout``). A cancelled heartbeat then lives on and a session's cleanup
waits for it. The relay uses ``asyncio.timeout`` instead of ``wait_for``; ``db_call`` and
``raise_if_cancelling`` also guard the database-thread calls (asgiref 3.13 propagates a
cancellation of a plain thread call — ``tests/compat`` checks both facts, so either
changing is noticed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from channels.db import database_sync_to_async

T = TypeVar("T")


async def db_call(func: Callable[..., T], /, **kwargs: Any) -> T:
    """Run ORM code on the database thread (stale connections closed); cancellation-safe."""
    try:
        return await database_sync_to_async(func)(**kwargs)
    finally:
        raise_if_cancelling()


def raise_if_cancelling() -> None:
    """Raise the CancelledError that was asked for, if an await swallowed it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
