"""The user's daily budget, checked after every answer: one small collaborator of the session.

When an answer's usage has been counted (the upstream's end of an answer; GPT-Live: a
delegated backend's tokens too), ``AnswerBudget.answer_counted`` starts a check
(``realtime.guards.budgets.answer_check``, given by the edge). Until it is done the outbox is
held: frames and audio wait, in order, so no new answer is asked for or spoken into on a
spent budget and a session overruns by at most the answer that crossed the limit
(docs/security.md). An answer counted while a check runs is checked once more after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.kernel.counters import SessionCounters
from realtime.kernel.endings import Ending
from realtime.session.outbox import UpstreamOutbox

log = logging.getLogger("realtime.session")

Check = Callable[[dict[str, int]], Awaitable[Ending | None]]


class AnswerBudget:
    def __init__(
        self,
        *,
        session_id: Any,
        check: Check | None,
        counters: SessionCounters,
        outbox: UpstreamOutbox,
        timeout_s: float,
        live: Callable[[], bool],
        spawn: Callable[[Awaitable[Any], str], Any],
        end: Callable[[Ending], Awaitable[None]],
    ) -> None:
        """``check(counters)``: the ending when the budget is used up (None: no daily limit);
        ``live()``: the session is live (no check before or after); ``spawn``: start a task
        of the session; ``end(ending)``: end the session."""
        self.id = session_id
        self._check = check
        self._counters = counters
        self._outbox = outbox
        self._timeout_s = timeout_s
        self._live = live
        self._spawn = spawn
        self._end = end
        self.checking = False  # a check is running: nothing goes upstream meanwhile
        self._again = False  # another answer was counted during the check: check once more

    def answer_counted(self) -> None:
        """An answer's usage has been counted: check before anything more goes upstream."""
        if self._check is None or not self._live():
            return
        if self.checking:
            self._again = True
            return
        self.checking = True
        self._outbox.hold()
        self._spawn(self._run(self._check), "budget")

    async def _run(self, check: Check) -> None:
        while True:
            self._again = False
            ending = None
            try:  # a database that does not answer: the presence guard deals with it
                async with asyncio.timeout(self._timeout_s):
                    ending = await check(self._counters.columns())
            except TimeoutError:
                log.warning("session %s: the daily budget check timed out", self.id)
            if ending is not None:
                log.info("session %s: daily budget used up (after an answer)", self.id)
                await self._end(ending)
                return
            if not self._again:
                break
        self.checking = False
        self._outbox.resume()
