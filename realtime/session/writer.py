"""The session's writer: the only sender upstream, so frames keep their order.

It takes frames from the outbox and sends them to the upstream serving now. Once it runs,
audio may skip it (``outbox.write_now``: written at once when nothing is queued ahead). A
renewal stops it (what is queued stays queued) and starts it again for the new upstream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.session.outbox import UpstreamOutbox
from realtime.upstream import UpstreamAdapter


class UpstreamWriter:
    def __init__(
        self,
        *,
        outbox: UpstreamOutbox,
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
        live: Callable[[], bool],
    ) -> None:
        self.outbox = outbox
        self._spawn = spawn
        self._live = live
        self._task: asyncio.Task[None] | None = None

    def start(self, upstream: UpstreamAdapter) -> None:
        """Write to ``upstream`` (not once the session is ending: a renewal just done)."""
        if self._live():
            self._task = self._spawn(self._write(upstream), "writer")
            self.outbox.write_now = upstream.write_now  # audio skips the writer when it can

    async def stop(self) -> None:
        """Stop writing upstream (a renewal); what is queued stays queued."""
        self.outbox.write_now = None
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def _write(self, upstream: UpstreamAdapter) -> None:
        get, send = self.outbox.next, upstream.send
        try:
            while True:
                await send(await get())
        except Exception as exc:
            if upstream.closed_ending(exc) is None:
                raise
            # the reader sees the same close and reports it
