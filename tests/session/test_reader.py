"""The session's reader (session/reader.py) on a fake upstream: no socket, no session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from realtime.kernel import endings
from realtime.kernel.endings import SessionEnded
from realtime.session.answers import Answers
from realtime.session.reader import UpstreamReader


class Said(str):
    """A neutral event of the fake upstream: one per frame, or derived by time."""


class FakeUpstream:
    def __init__(self) -> None:
        self.frames: asyncio.Queue[str] = asyncio.Queue()
        self.due: list[Said] = []  # events the adapter derives (due now once set)

    async def recv(self) -> str:
        return await self.frames.get()

    def translate(self, frame: str, now: float) -> list[Any]:
        return [Said(frame)]

    def deadline(self) -> float | None:
        return 0.0 if self.due else None

    def tick(self, now: float) -> list[Any]:
        due, self.due = self.due, []
        return due


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream()


def reading(upstream: FakeUpstream, answers: Answers, stall_s: float = 30.0) -> Any:
    reader = UpstreamReader(upstream=upstream, answers=answers, stall_s=stall_s)  # type: ignore[arg-type]
    handled: asyncio.Queue[Said] = asyncio.Queue()

    async def handle(event: Said) -> None:
        await handled.put(event)

    task = asyncio.ensure_future(reader.run({Said: handle}, live=lambda: True))
    return reader, handled, task


async def stop(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_frames_are_translated_and_handled_in_order(upstream):
    _, handled, task = reading(upstream, Answers())
    for text in ("one", "two", "three"):
        upstream.frames.put_nowait(text)
    assert [await handled.get() for _ in range(3)] == ["one", "two", "three"]
    await stop(task)


async def test_silence_while_an_answer_is_owed_is_a_stall(upstream):
    answers = Answers()
    reader, _, task = reading(upstream, answers, stall_s=0.05)
    reader.answer_owed()
    answers.asked(now=True)
    reader.rearm()
    with pytest.raises(SessionEnded) as ended:
        await asyncio.wait_for(task, 5)
    assert ended.value.ending is endings.UPSTREAM_STALLED


async def test_silence_while_idle_is_no_stall(upstream):
    _, handled, task = reading(upstream, Answers(), stall_s=0.01)
    await asyncio.sleep(0.1)  # ten stall timeouts: nothing was owed
    assert not task.done()
    upstream.frames.put_nowait("still here")
    assert await handled.get() == "still here"
    await stop(task)


async def test_events_the_adapter_derives_are_collected_when_it_wakes_the_reader(upstream):
    reader, handled, task = reading(upstream, Answers())
    await asyncio.sleep(0)  # the reader waits for a frame (no deadline: forever)
    upstream.due.append(Said("speech started"))  # e.g. the detector heard the user
    reader.wake()
    assert await asyncio.wait_for(handled.get(), 5) == "speech started"  # not at a frame
    await stop(task)
