"""What every edge consumer that serves a ``RelaySession`` shares (the browser WebSocket,
``consumer.py``; the phone stream, ``phone.py``): the group administrators' broadcasts reach,
the session it holds, an unexpected error ending it with ``internal_error``, its release."""

from __future__ import annotations

import logging
from typing import Any

from realtime.compat.consumer import DirectWebsocketConsumer
from realtime.kernel import endings
from realtime.kernel.endings import Ending
from realtime.ops.control import SESSIONS_GROUP
from realtime.session.core import RelaySession

log = logging.getLogger("realtime.session")


class SessionEdgeConsumer(DirectWebsocketConsumer):
    groups = [SESSIONS_GROUP]  # broadcasts (terminate) to every session on every worker
    session: RelaySession | None = None

    async def refuse(self, ending: Ending) -> None:
        """End a connection that has no session (each edge tells its client its own way)."""
        raise NotImplementedError

    async def handler_failed(self, message: dict[str, Any]) -> None:
        log.exception("session %s: unexpected error in %s", self._session_id, message["type"])
        if self.session is not None:
            await self.session.end(endings.INTERNAL_ERROR)
        else:
            await self.refuse(endings.INTERNAL_ERROR)

    async def cleanup(self) -> None:
        if self.session is not None:
            await self.session.close()

    @property
    def _session_id(self) -> Any:
        return self.session.id if self.session is not None else "-"
