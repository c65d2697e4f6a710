"""ToolRunner under concurrency: parallel calls, timeouts, cancellation (async and sync tools)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from realtime.tools import ToolCall, ToolContext, ToolRegistry
from tests.tools.conftest import Notices


async def test_parallel_calls_run_concurrently_async_and_sync(make_runner: Any) -> None:
    registry = ToolRegistry()
    async_barrier = asyncio.Barrier(3)
    thread_barrier = threading.Barrier(3, timeout=5)

    # Each call waits until all three have started: this passes only if they overlap.
    @registry.tool(description="Meet the others (async).")
    async def meet_async(n: int) -> int:
        async with asyncio.timeout(5):
            await async_barrier.wait()
        return n

    @registry.tool(description="Meet the others (sync).")
    def meet_sync(n: int) -> int:
        thread_barrier.wait()
        return n

    runner = make_runner(registry)
    for name in ("meet_async", "meet_sync"):
        calls = [ToolCall(f"{name}-{n}", name, json.dumps({"n": n})) for n in range(3)]
        assert await runner.run_all(calls) == ["0", "1", "2"]
    assert runner.stats.errors == 0 and runner.stats.timeouts == 0


async def test_a_timeout_gives_a_timeout_result_async_and_sync(
    make_runner: Any, notices: Notices
) -> None:
    registry = ToolRegistry()
    sync_finished = threading.Event()

    @registry.tool(description="Never answers.", timeout=0.1)
    async def stuck_async() -> None:
        await asyncio.sleep(30)

    @registry.tool(description="Never answers (sync).", timeout=0.1)
    def stuck_sync(ctx: ToolContext) -> None:
        ctx.cancelled.wait(10)  # a well-behaved long tool watches for being abandoned
        sync_finished.set()

    runner = make_runner(registry, default_timeout=30)
    for name in ("stuck_async", "stuck_sync"):
        began = time.monotonic()
        result = json.loads(await runner.run(name, name, "{}"))
        assert time.monotonic() - began < 2
        assert result == {
            "error": "timeout",
            "message": "The tool did not finish within 0.1 seconds.",
        }
        assert notices.last(name).error == "timeout"
    assert await asyncio.to_thread(sync_finished.wait, 5)  # the thread was told to stop
    assert (runner.stats.timeouts, runner.stats.errors) == (2, 0)


async def test_the_runner_default_timeout_applies_unless_the_tool_sets_one(
    make_runner: Any,
) -> None:
    registry = ToolRegistry()

    @registry.tool(description="Takes 0.3 s; allowed 5.", timeout=5)
    async def patient() -> str:
        await asyncio.sleep(0.3)
        return "done"

    @registry.tool(description="Takes 0.3 s; the runner default applies.")
    async def ordinary() -> str:
        await asyncio.sleep(0.3)
        return "done"

    runner = make_runner(registry, default_timeout=0.1)
    assert await runner.run("p", "patient", "{}") == "done"
    assert json.loads(await runner.run("o", "ordinary", "{}"))["error"] == "timeout"


async def test_cancel_ends_every_pending_call_and_nothing_keeps_running(
    make_runner: Any, notices: Notices
) -> None:
    registry = ToolRegistry()
    started = asyncio.Semaphore(0)
    loop = asyncio.get_running_loop()
    thread_done = threading.Event()

    @registry.tool(description="Waits forever (async).")
    async def forever() -> None:
        started.release()
        await asyncio.sleep(3600)

    @registry.tool(description="Waits until abandoned (sync).")
    def until_abandoned(ctx: ToolContext) -> None:
        loop.call_soon_threadsafe(started.release)
        ctx.cancelled.wait(3600)
        thread_done.set()

    runner = make_runner(registry)
    tasks = [
        runner.submit("a1", "forever", "{}"),
        runner.submit("a2", "forever", "{}"),
        runner.submit("s1", "until_abandoned", "{}"),
    ]
    async with asyncio.timeout(5):
        for _ in tasks:
            await started.acquire()
    assert runner.pending == 3

    await runner.cancel()

    assert all(task.cancelled() for task in tasks)
    assert runner.pending == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("realtime-tool-")]
    assert await asyncio.to_thread(thread_done.wait, 5)
    assert {n.call_id: n.error for n in notices if n.status == "error"} == {
        "a1": "cancelled",
        "a2": "cancelled",
        "s1": "cancelled",
    }
    assert (runner.stats.cancelled, runner.stats.errors) == (3, 0)
    # The runner stays usable after a barge-in.
    registry.tool(description="Quick.")(quick)
    assert await runner.run("after", "quick", "{}") == "ok"


def quick() -> str:
    return "ok"


async def test_cancelling_the_caller_of_run_all_cancels_its_calls(make_runner: Any) -> None:
    registry = ToolRegistry()

    @registry.tool(description="Waits forever.")
    async def forever() -> None:
        await asyncio.sleep(3600)

    runner = make_runner(registry)
    batch = asyncio.create_task(
        runner.run_all([ToolCall(str(n), "forever", "{}") for n in range(3)])
    )
    await asyncio.sleep(0.05)
    assert runner.pending == 3
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    await asyncio.sleep(0)
    assert runner.pending == 0
    assert runner.stats.cancelled == 3


async def test_a_cancellation_that_asgiref_swallows_is_still_honoured(
    make_runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """asgiref returns the result of a sync call that finished as the cancellation arrived
    (see registry.Presence._call); the runner must still end the call as cancelled."""

    def swallowing_sync_to_async(function: Any, **options: Any) -> Any:
        async def call(**kwargs: Any) -> Any:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                pass  # what asgiref does when the thread had already finished
            return function(**kwargs)

        return call

    registry = ToolRegistry()

    @registry.tool(description="Plain text.")
    def plain() -> str:
        return "just text"

    monkeypatch.setattr("realtime.tools.runner.database_sync_to_async", swallowing_sync_to_async)
    runner = make_runner(registry)
    task = runner.submit("q", "plain", "{}")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runner.stats.cancelled == 1
