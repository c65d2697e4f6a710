"""Running the model's tool calls for one session: never raising, counted, cancellable."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from realtime.kernel import text as textrules
from realtime.tools.context import Keypad, PhoneCall, ToolContext, ToolRefused
from realtime.tools.outcomes import (
    ErrorKind,
    Outcome,
    ToolCall,
    ToolNotice,
    ToolStats,
    describe_validation_error,
    error_text,
    jsonable,
    result_text,
)
from realtime.tools.registry import ToolRegistry
from realtime.tools.spec import ToolSpec

log = logging.getLogger("realtime.tools")

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_RESULT_CHARS = 32_000
# Sync tools get their own bounded pool: not asgiref's one shared thread, which every
# session's registry writes use (a slow tool would stall them all), and not the loop's
# default executor, which DNS lookups need. A timed-out sync call keeps its thread until
# it returns; the pool bounds how many can.
TOOL_THREADS = 8
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def tool_executor() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(TOOL_THREADS, thread_name_prefix="relay-tool")
        return _executor


NoticeSink = Callable[[ToolNotice], None]


class ToolRunner:
    """One per session. ``run`` executes a call and returns the text for the model.

    ``submit`` starts a call as a task the runner tracks; ``cancel`` (barge-in, close)
    cancels every tracked call and waits for them. Every call produces a "started" notice
    and then a "done" or "error" notice through ``on_notice``.
    """

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        user: Any = None,
        session_id: Any = "",
        config: Any = None,
        default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
        on_notice: NoticeSink | None = None,
        executor: ThreadPoolExecutor | None = None,
        phone: PhoneCall | None = None,
        keypad: Keypad | None = None,
    ) -> None:
        """``phone``, ``keypad``: a phone call's facts and its caller's key presses, for the
        tools' context (``ToolContext.phone``, ``ToolContext.keypad``)."""
        self.registry = registry
        self.session_id = str(session_id)
        self.default_timeout = default_timeout
        self.max_result_chars = max_result_chars
        self.stats = ToolStats()
        self._on_notice = on_notice
        self._executor = executor
        self._keypad = keypad
        self._base_context = ToolContext(session_id=self.session_id, config=config, phone=phone)
        if user is not None:
            self._base_context = dataclasses.replace(self._base_context, user=user)
        self._tasks: set[asyncio.Task[str]] = set()

    @property
    def pending(self) -> int:
        return sum(1 for task in self._tasks if not task.done())

    def submit(
        self, call_id: str, name: str, arguments: str | Mapping[str, Any]
    ) -> asyncio.Task[str]:
        task = asyncio.create_task(
            self.run(call_id, name, arguments), name=f"realtime-tool-{call_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run_all(self, calls: Iterable[ToolCall]) -> list[str]:
        """Run these calls concurrently; their results in the order given."""
        tasks = [self.submit(call.call_id, call.name, call.arguments) for call in calls]
        return list(await asyncio.gather(*tasks))

    async def cancel(self) -> None:
        """Cancel every call still running and wait until they have ended."""
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=2)
            if stuck:
                log.warning(
                    "session %s: %d tool call(s) ignored cancellation", self.session_id, len(stuck)
                )

    async def run(self, call_id: str, name: str, arguments: str | Mapping[str, Any]) -> str:
        """Execute one call; the result text for the model. Raises only CancelledError."""
        started = time.monotonic()
        spec = self.registry.get(name)
        if spec is None:
            name = textrules.clean(name[:64])  # the model's text: bounded, valid for every sink
            self._notify(ToolNotice(call_id=call_id, name=name, status="started"))
            return self._fail(call_id, name, started, "unknown_tool", f"No tool is named {name!r}.")
        invalid = _invalid_text(arguments)
        if invalid is not None:
            self._notify(ToolNotice(call_id=call_id, name=name, status="started"))
            message = f"Invalid arguments: {invalid[0]} holds {invalid[1]}."
            return self._fail(call_id, name, started, "invalid_arguments", message)
        try:
            parsed = spec.parse_arguments(arguments)
        except ValidationError as exc:
            self._notify(ToolNotice(call_id=call_id, name=name, status="started"))
            message = "Invalid arguments: " + describe_validation_error(exc)
            return self._fail(call_id, name, started, "invalid_arguments", message)
        shown_arguments = parsed.model_dump(mode="json") if spec.show_arguments else None
        self._notify(
            ToolNotice(call_id=call_id, name=name, status="started", arguments=shown_arguments)
        )
        context = self._context(spec, call_id)
        try:
            value = await self._call_with_timeout(spec, parsed, context)
            shown = jsonable(value)
            output = result_text(shown)
        except asyncio.CancelledError:
            context.cancelled.set()
            self._fail(call_id, name, started, "cancelled", "cancelled")
            raise
        except _Expired as expired:
            context.cancelled.set()
            message = f"The tool did not finish within {expired.seconds:g} seconds."
            return self._fail(call_id, name, started, "timeout", message)
        except ToolRefused as refusal:
            return self._fail(call_id, name, started, "refused", refusal.message)
        except Exception as exc:
            # Logged for operators (with the traceback); the model learns only that it failed.
            what = (
                "returned a value with no JSON form"
                if isinstance(exc, PydanticSerializationError)
                else "failed"
            )
            self._log_failure(name, call_id, what)
            return self._fail(call_id, name, started, "failed", "The tool failed.")
        if len(output) > self.max_result_chars:
            self._log_failure(name, call_id, f"returned {len(output)} characters", trace=False)
            message = "The tool's result was too large."
            return self._fail(call_id, name, started, "failed", message)
        duration_ms = self._record("done", started, name, call_id)
        result = shown if spec.show_result else None
        self._notify(
            ToolNotice(
                call_id,
                name,
                "done",
                arguments=shown_arguments,
                result=result,
                duration_ms=duration_ms,
            )
        )
        return output

    async def _call_with_timeout(
        self, spec: ToolSpec, arguments: BaseModel, context: ToolContext
    ) -> Any:
        seconds = spec.timeout if spec.timeout is not None else self.default_timeout
        try:
            async with asyncio.timeout(seconds) as deadline:
                return await self._invoke(spec, spec.call_kwargs(arguments, context))
        except TimeoutError:
            if deadline.expired():
                raise _Expired(seconds) from None
            raise  # the tool's own TimeoutError: a failure like any other

    async def _invoke(self, spec: ToolSpec, kwargs: dict[str, Any]) -> Any:
        if spec.is_async:
            return await spec.function(**kwargs)
        # database_sync_to_async closes stale DB connections around the call.
        call = database_sync_to_async(
            spec.function, thread_sensitive=False, executor=self._executor or tool_executor()
        )
        value = await call(**kwargs)
        # asgiref may return the result of a call that finished as a cancellation arrived,
        # swallowing the cancellation (see registry.Presence._call): honour it here.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return value

    def _context(self, spec: ToolSpec, call_id: str) -> ToolContext:
        logger = logging.getLogger(f"realtime.tools.{spec.name}")
        return dataclasses.replace(
            self._base_context,
            call_id=call_id,
            log=logging.LoggerAdapter(logger, {"session_id": self.session_id}),
            cancelled=threading.Event(),
            keypad=self._keypad.keys if self._keypad is not None else "",
        )

    def _fail(self, call_id: str, name: str, started: float, kind: ErrorKind, message: str) -> str:
        duration_ms = self._record(kind, started, name, call_id)
        self._notify(ToolNotice(call_id, name, "error", error=kind, duration_ms=duration_ms))
        return error_text(kind, message)

    def _record(self, outcome: Outcome, started: float, name: str, call_id: str) -> int:
        duration_ms = int((time.monotonic() - started) * 1000)
        self.stats.record(outcome, duration_ms)
        level = logging.DEBUG if outcome in ("done", "cancelled") else logging.INFO
        log.log(
            level,
            "session %s: tool %r (call %r) %s in %d ms",
            self.session_id,
            name,
            call_id,
            outcome,
            duration_ms,
            extra={"session_id": self.session_id},
        )
        return duration_ms

    def _log_failure(self, name: str, call_id: str, what: str, *, trace: bool = True) -> None:
        log.error(
            "session %s: tool %r (call %r) %s",
            self.session_id,
            name,
            call_id,
            what,
            exc_info=trace,
            extra={"session_id": self.session_id},
        )

    def _notify(self, notice: ToolNotice) -> None:
        if self._on_notice is None:
            return
        try:
            self._on_notice(notice)
        except Exception:
            log.exception("session %s: tool notice sink failed", self.session_id)


def _invalid_text(arguments: str | Mapping[str, Any]) -> tuple[str, str] | None:
    """A lone surrogate or NUL in the model's arguments (realtime/kernel/text.py): never passed
    to a tool, whose result, notice or record could not be sent or stored."""
    if isinstance(arguments, str):
        if not textrules.may_hold_invalid(arguments):
            return textrules.find_invalid(arguments)  # a raw one (JSON would refuse NUL anyway)
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return None  # not JSON: validation says so
    return textrules.find_invalid(arguments)


class _Expired(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
