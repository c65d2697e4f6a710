"""A session's tool turns: the model's calls run here; their outputs go back together.

A *tool turn* is what one answer asked for (Realtime API: one ``response.done``; GPT-Live: one
delegated response). Each call starts as soon as the model makes it; when the turn ends and
every call has finished, the outputs go back to the model with one request to go on. A turn
that was cancelled (barge-in), an ``interrupt`` or the session's close cancels the calls
still running, and their outputs are never sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.kernel.counters import SessionCounters
from realtime.kernel.history import History
from realtime.tools import ToolNotice, ToolRegistry, ToolRunner
from realtime.upstream import UpstreamAdapter

UNKNOWN_TOOL = json.dumps({"error": "unknown_tool", "message": "No tools are offered here."})


class ToolTurns:
    def __init__(
        self,
        *,
        tools: ToolRegistry,
        upstream: UpstreamAdapter,
        counters: SessionCounters,
        runner_options: dict[str, Any],
        send: Callable[[list[str], list[str]], Any],
        notify: Callable[[ToolNotice], None],
        history: History | None = None,
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
    ) -> None:
        """``send(frames, ask)``: give outputs (``frames``) and ask the model to go on;
        ``spawn(coro, name)``: start a task of the session (one that fails ends it)."""
        self.upstream = upstream
        self._spawn = spawn
        self.counters = counters
        self.history = history if history is not None else History()
        self._send = send
        self._notify = notify
        self.runner = (
            ToolRunner(tools, on_notice=self._on_notice, **runner_options) if len(tools) else None
        )
        self._calls: list[tuple[str, asyncio.Task[str]]] = []  # the current turn's
        self._deliveries: set[asyncio.Task[None]] = set()

    def call(self, call_id: str, name: str, arguments: str) -> list[str]:
        """Start one call; frames to send now (only when no tools are offered at all)."""
        self.history.tool_call(call_id, name, arguments)
        if self.runner is None:
            self.history.tool_output(call_id, UNKNOWN_TOOL)
            return self.upstream.tool_result(call_id, UNKNOWN_TOOL)
        self._calls.append((call_id, self.runner.submit(call_id, name, arguments)))
        return []

    def turn_ended(self, *, cancelled: bool) -> None:
        calls, self._calls = self._calls, []
        if calls and cancelled:
            for _, task in calls:  # the turn that asked for them was cut: drop their work
                task.cancel()
        elif calls:
            delivery = self._spawn(self._deliver(calls), f"tool-results-{calls[0][0]}")
            self._deliveries.add(delivery)
            delivery.add_done_callback(self._deliveries.discard)

    @property
    def busy(self) -> bool:
        """Calls of the current turn, or outputs on their way back."""
        return bool(self._calls or self._deliveries)

    def cancel(self) -> None:
        """Stop: the current turn's calls and any outputs still waiting to be sent."""
        calls, self._calls = self._calls, []
        for _, task in calls:
            task.cancel()
        for delivery in list(self._deliveries):
            delivery.cancel()

    async def close(self) -> None:
        self.cancel()
        if self._deliveries:
            await asyncio.wait(list(self._deliveries), timeout=2)
        if self.runner is not None:
            await self.runner.cancel()

    def summary(self) -> str:
        if self.runner is None or not self.runner.stats.calls:
            return ""
        stats = self.runner.stats
        return (
            f"; tools: {stats.calls} calls, {stats.errors} failed, {stats.refusals} refused, "
            f"{stats.timeouts} timed out, {stats.cancelled} cancelled, "
            f"longest {stats.longest_ms} ms"
        )

    async def _deliver(self, calls: list[tuple[str, asyncio.Task[str]]]) -> None:
        outputs = await asyncio.gather(*(task for _, task in calls), return_exceptions=True)
        frames: list[str] = []
        for (call_id, _), output in zip(calls, outputs, strict=True):
            if isinstance(output, asyncio.CancelledError):
                return  # cancelled (interrupt, close): the model gets no half answer
            if isinstance(output, BaseException):
                raise output  # a bug (a call never raises otherwise): the session ends
            frames += self.upstream.tool_result(call_id, output)
        for (call_id, _), output in zip(calls, outputs, strict=True):
            self.history.tool_output(call_id, output)
        self._send(frames, self.upstream.continue_after_tools())

    def _on_notice(self, notice: ToolNotice) -> None:
        """A call started or ended: count finished calls; tell the client."""
        if notice.status != "started":
            counters = self.counters
            counters.tool_calls += 1
            if notice.status == "error" and notice.error != "cancelled":
                counters.tool_errors += 1
            counters.tool_ms += notice.duration_ms or 0
        self._notify(notice)
