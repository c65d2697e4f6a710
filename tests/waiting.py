"""Waiting for something to happen, instead of sleeping a fixed time and hoping it did."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T], timeout: float = 10, interval: float = 0.05, what: str = ""
) -> T:
    """Call ``check`` until it returns something truthy and return that; after ``timeout``
    seconds, AssertionError naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what or check!r} (last: {value!r})")
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], T | Awaitable[T]],
    timeout: float = 10,
    interval: float = 0.02,
    what: str = "",
) -> T:
    """``eventually`` on the running event loop: ``check`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what or check!r} (last: {value!r})")
        await asyncio.sleep(interval)
