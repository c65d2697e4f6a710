"""GPT-Live server-event builders, and the nested Responses streaming events that
`response.event` wraps under Responses delegation. Plain dicts shaped like the SDK models
(`openai.types.live`, `openai.types.responses`)."""

from __future__ import annotations

import time
from typing import Any

from .. import events as ev


def event(type_: str, client_event_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A server event; ``client_event_id`` echoes the command's ``event_id`` when it had one."""
    result = {"type": type_, "event_id": ev.new_id("event"), **fields}
    if client_event_id is not None:
        result["client_event_id"] = client_event_id
    return result


def error(
    code: str,
    message: str,
    *,
    param: str | None = None,
    client_event_id: str | None = None,
    type_: str = "invalid_request_error",
) -> dict[str, Any]:
    # ErrorEvent carries client_event_id twice: on the event and inside `error`.
    body: dict[str, Any] = {"type": type_, "code": code, "message": message}
    if param is not None:
        body["param"] = param
    if client_event_id is not None:
        body["client_event_id"] = client_event_id
    return event("error", client_event_id, error=body)


def delegation_created(
    delegation_id: str, target: str, offset_ms: int, response_id: str | None = None
) -> dict[str, Any]:
    delegation: dict[str, Any] = {"id": delegation_id, "target": target, "type": "delegation"}
    if response_id is not None:  # the SDK leaves it out for client delegations
        delegation["response_id"] = response_id
    return event("session.delegation.created", offset_ms=offset_ms, delegation=delegation)


def usage(seconds: int) -> dict[str, Any]:
    return {"seconds": float(seconds)}


def text_tokens(text: str) -> int:
    return ev.text_tokens(text)


class ResponseStream:
    """One backend Responses run: its id, its snapshots and its numbered streaming events."""

    def __init__(self, config: dict[str, Any], previous_response_id: str | None) -> None:
        self.id = ev.new_id("resp")
        self.config = config
        self.previous_response_id = previous_response_id
        self.created_at = int(time.time())
        self._sequence = 0

    def next(self, type_: str, **fields: Any) -> dict[str, Any]:
        nested = {"type": type_, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return nested

    def snapshot(self, status: str, usage: dict[str, Any] | None = None) -> dict[str, Any]:
        # Per the SDK's ResponseEvent, lifecycle snapshots are slimmed (no input; instructions,
        # tools and output emptied); the granular events carry the content.
        choice = self.config.get("tool_choice")
        if not (isinstance(choice, str) or (isinstance(choice, dict) and "name" in choice)):
            choice = "auto"
        snapshot: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "model": self.config["model"],
            "instructions": None,
            "output": [],
            "tools": [],
            "tool_choice": choice,
            "parallel_tool_calls": bool(self.config.get("parallel_tool_calls", True)),
            "previous_response_id": self.previous_response_id,
            "max_output_tokens": self.config.get("max_output_tokens"),
            "error": None,
            "incomplete_details": None,
            "metadata": {},
            "usage": usage,
        }
        if status == "completed":
            snapshot["completed_at"] = int(time.time())
        return snapshot


def response_usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def message_item(item_id: str, status: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [output_text(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}
