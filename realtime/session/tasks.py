"""The session's tasks: each named, cancelled at close, and ending the session if it fails.

Never a task that dies alone, leaving a session without its presence, writer or clock: a
task that raises ``SessionEnded`` ends the session with that ending (the presence guard),
any other failure is logged with the session id and ends it with ``internal_error`` (1011).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.kernel import endings
from realtime.kernel.endings import Ending, SessionEnded

log = logging.getLogger("realtime.session")


class SessionTasks:
    def __init__(self, *, session_id: Any, end: Callable[[Ending], Awaitable[None]]) -> None:
        """``end(ending)``: end the session (a failing task calls it)."""
        self.id = session_id
        self._end = end
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Start one of the session's tasks (named ``realtime-<name>-<session id>``)."""
        task = asyncio.ensure_future(self._guarded(coro, name))
        task.set_name(f"realtime-{name}-{self.id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    async def cancel_all(self, timeout: float) -> None:
        """Cancel every task still running and wait for them (at most ``timeout`` s each
        round). A task may start another as it stops (a renewal retiring the old upstream):
        those are cancelled in a second round."""
        for _ in range(2):
            tasks = [task for task in self._tasks if not task.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout)

    async def _guarded(self, coro: Awaitable[Any], name: str) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except SessionEnded as ended:  # a task that ends the session on purpose (presence)
            await self._end(ended.ending)
        except Exception:
            log.exception(
                "session %s: its %s task failed", self.id, name, extra={"session_id": str(self.id)}
            )
            await self._end(endings.INTERNAL_ERROR)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # ending the session failed
            log.error(
                "session %s: task %s failed while the session ended",
                self.id,
                task.get_name(),
                exc_info=task.exception(),
                extra={"session_id": str(self.id)},
            )
