"""The session's reader: upstream frames in, neutral events out, each to its handler.

One ``asyncio`` timeout covers many frames: it is moved only when something is due sooner —
a stall (no upstream frame for ``stall_s`` while an answer is owed: ``answers.expecting``)
or an event the adapter derives from time alone (its ``deadline``/``tick``: GPT-Live's
pauses) or a renewal of the upstream session (``renewal.py``: its timer) — and a check that
fires early just waits again; no timer is made per frame.

The reader runs the renewal when its time has come, and the recovery when the upstream fails
(closed, expired, stalled): both switch the upstream under it, and it reads on from the new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from realtime.kernel import endings
from realtime.kernel.endings import SessionEnded
from realtime.session.answers import Answers
from realtime.upstream import UpstreamAdapter

Handlers = Mapping[type, Callable[[Any], Awaitable[None]]]


class Renewing(Protocol):
    """What the reader asks of a renewal (``renewal.Renewal``)."""

    def next_check(self) -> float | None: ...  # when a timed renewal may be due (loop time)

    def due(self, now: float) -> bool: ...

    async def renew(self) -> None: ...

    async def recover(self, failure: SessionEnded) -> bool: ...  # False: the session ends


class UpstreamReader:
    def __init__(self, *, upstream: UpstreamAdapter, answers: Answers, stall_s: float) -> None:
        self.upstream = upstream  # the session switches it (renewal)
        self.answers = answers
        self.stall_s = stall_s
        self.last_frame = 0.0  # loop time of the last upstream frame
        self.renewal: Renewing | None = None  # set by the session
        self._watch: asyncio.Timeout | None = None

    async def run(self, handlers: Handlers, live: Callable[[], bool]) -> None:
        """Read, translate and handle upstream frames while ``live()``; raises
        ``SessionEnded(upstream_stalled)`` on a stall, and whatever the socket raises — once
        the renewal could not recover from it."""
        while True:
            try:
                await self._read(handlers, live)
                return
            except Exception as exc:
                # A dropped, expired or stalled upstream: a new one, if it can be had.
                failure = exc if isinstance(exc, SessionEnded) else None
                ending = None if failure else self.upstream.closed_ending(exc)
                if ending is not None:
                    failure = SessionEnded(ending)
                renewal = self.renewal
                if failure is None or renewal is None or not await renewal.recover(failure):
                    raise

    async def _read(self, handlers: Handlers, live: Callable[[], bool]) -> None:
        loop = asyncio.get_running_loop()
        self.last_frame = loop.time()
        while live():
            upstream = self.upstream
            recv, translate = upstream.recv, upstream.translate
            try:
                async with asyncio.timeout_at(self._next_check()) as watch:
                    self._watch = watch
                    while True:
                        frame = await recv()
                        now = self.last_frame = loop.time()
                        for event in translate(frame, now):
                            await handlers[type(event)](event)
                        self.rearm()
            except TimeoutError:
                # The expired timeout can no longer be moved: handlers below that ask for a
                # wake-up find none, and the next wait starts from _next_check() anyway.
                self._watch = None
                now = loop.time()
                due = upstream.deadline()
                if due is not None and now >= due:
                    for event in upstream.tick(now):
                        await handlers[type(event)](event)
                elif self.answers.expecting and now - self.last_frame >= self.stall_s:
                    # Silence is fine while idle; while an answer is expected it is a stall.
                    raise SessionEnded(endings.UPSTREAM_STALLED) from None
                elif self.renewal is not None and self.renewal.due(now):
                    await self.renewal.renew()
            finally:
                self._watch = None

    def answer_owed(self) -> None:
        """An answer was asked for: when none was owed, the stall clock starts now, not at
        the last frame (call before ``answers.asked``, then ``rearm``)."""
        if not self.answers.expecting:
            self.last_frame = asyncio.get_running_loop().time()

    def rearm(self) -> None:
        """Move the reader's timeout earlier when something is now due sooner."""
        watch = self._watch
        if watch is not None and not watch.expired():
            due = self._next_check()
            if due is not None:
                when = watch.when()
                if when is None or due < when:
                    watch.reschedule(due)

    def wake(self) -> None:
        """The adapter has events due now (e.g. the user started speaking): end the
        reader's wait so it collects them with ``tick``."""
        watch = self._watch
        if watch is not None and not watch.expired():
            watch.reschedule(asyncio.get_running_loop().time())

    def _next_check(self) -> float | None:
        """When the reader must look again without a frame: a stall, an adapter's deadline,
        a renewal."""
        due = self.upstream.deadline()
        if self.answers.expecting:
            stall = self.last_frame + self.stall_s
            if due is None or stall < due:
                due = stall
        renew = self.renewal.next_check() if self.renewal is not None else None
        if renew is not None and (due is None or renew < due):
            return renew
        return due
