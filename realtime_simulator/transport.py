"""What the Realtime and GPT-Live session state machines share: sending events through the
stall / inject-error faults, recording them, closing, and background tasks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from .records import ConnectionRecord, Faults

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection


class EventSocket:
    def __init__(self, ws: ServerConnection, record: ConnectionRecord, faults: Faults) -> None:
        self.ws = ws
        self.record = record
        self.faults = faults
        self.stalled = False
        self.closing = False
        self.server_closed = False
        self._error_injected = False
        self._tasks: set[asyncio.Task[None]] = set()

    def fault_error(self, code: str) -> dict[str, Any]:
        """The `error` event the inject_error fault sends, in this API's shape."""
        raise NotImplementedError

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def send(self, event: dict[str, Any], delta_bytes: int | None = None) -> None:
        if self.stalled or self.closing:
            return
        try:
            await self.ws.send(json.dumps(event, separators=(",", ":")))
        except ConnectionClosed:
            self.closing = True
            return
        if delta_bytes is None:
            self.record.sent.append(event)
        else:
            slim = {k: v for k, v in event.items() if k != "delta"}
            slim["delta_bytes"] = delta_bytes
            self.record.sent.append(slim)
        type_ = event["type"]
        if type_ == self.faults.stall_after:
            self.stalled = True
        if type_ == self.faults.inject_error_after and not self._error_injected:
            self._error_injected = True
            await self.send(self.fault_error(self.faults.inject_error_code))

    async def close(self, code: int, reason: str) -> None:
        self.closing = True
        self.server_closed = True
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)
