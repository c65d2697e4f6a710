"""What a call produces: the result text for the model, a notice for the client, counters."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

NoticeStatus = Literal["started", "done", "error"]
# Why a call ended in "error" (also the result's "error" field the model reads).
ErrorKind = Literal[
    "unknown_tool", "invalid_arguments", "refused", "timeout", "failed", "cancelled"
]
Outcome = Literal["done"] | ErrorKind

MAX_VALIDATION_ERRORS = 5


@dataclass(frozen=True)
class ToolCall:
    call_id: str
    name: str
    arguments: str  # JSON text, as the model sent it


@dataclass(frozen=True)
class ToolNotice:
    """A client-facing description of a call's progress (a client event of the session;
    the WebSocket edge sends it as ``{"type":"tool_call",…}``).

    ``arguments`` and ``result`` are set only for a tool marked safe to show them
    (``show_arguments``/``show_result``); ``error`` says why a call ended in "error".
    ``duration_ms`` (on "done" and "error") is for metrics, not for the client.
    """

    call_id: str
    name: str
    status: NoticeStatus
    error: ErrorKind | None = None
    arguments: dict[str, Any] | None = None
    result: Any = None
    duration_ms: int | None = None


@dataclass
class ToolStats:
    """One session's tool counters. ``errors`` counts every call that ended in an error
    other than a refusal, a timeout or a cancellation (those have their own counters)."""

    calls: int = 0
    errors: int = 0
    refusals: int = 0
    timeouts: int = 0
    cancelled: int = 0
    total_ms: int = 0
    longest_ms: int = 0

    def record(self, outcome: Outcome, duration_ms: int) -> None:
        self.calls += 1
        if outcome == "refused":
            self.refusals += 1
        elif outcome == "timeout":
            self.timeouts += 1
        elif outcome == "cancelled":
            self.cancelled += 1
        elif outcome != "done":
            self.errors += 1
        self.total_ms += duration_ms
        self.longest_ms = max(self.longest_ms, duration_ms)

    def as_dict(self, prefix: str = "tool_") -> dict[str, int]:
        return {f"{prefix}{name}": value for name, value in asdict(self).items()}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def jsonable(value: Any) -> Any:
    """A tool's return value as plain JSON data (pydantic models, dataclasses, dates, …);
    raises ``pydantic_core.PydanticSerializationError`` for what has no JSON form."""
    return value if isinstance(value, str) else to_jsonable_python(value)


def result_text(value: Any) -> str:
    """The output the model receives: a string as it is, anything else as JSON."""
    return value if isinstance(value, str) else dumps(value)


def error_text(kind: ErrorKind, message: str) -> str:
    return dumps({"error": kind, "message": message})


ECHO_MIN_CHARS = 3  # shorter inputs are not cut out of messages (they would mangle words)


def _without_input(message: str, value: Any) -> str:
    """A tool's own validator may word its error with the value (a pydantic custom error's
    context); pydantic's built-in messages never do. Either way the value is not sent back."""
    if isinstance(value, str) and len(value) >= ECHO_MIN_CHARS and value in message:
        return message.replace(value, "the value")
    return message


def describe_validation_error(exc: ValidationError) -> str:
    """Which argument is wrong and why, without echoing the input back."""
    parts = []
    for error in exc.errors(include_url=False, include_input=True, include_context=False):
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        parts.append(f"{where}: {_without_input(error['msg'], error.get('input'))}")
    more = len(parts) - MAX_VALIDATION_ERRORS
    text = "; ".join(parts[:MAX_VALIDATION_ERRORS])
    return text + (f"; and {more} more" if more > 0 else "")
