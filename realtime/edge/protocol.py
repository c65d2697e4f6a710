"""The client protocol (docs/protocol.md): pure code, no I/O, no Django.

Client → relay: text frames are validated against an allow-list and parsed into commands.
Relay → client: the session's client events (``realtime.session.client_events``) encoded as
text frames (``encode``); reply audio goes in binary frames as it is. The canonical part is
byte-compatible with the other middle tiers of the sample family: compact JSON, field names
and order as documented.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from realtime.kernel.commands import (
    ClientCommand,
    ClientProtocolError,
    Commit,
    Interrupt,
    Playback,
    UserMessage,
)
from realtime.session import client_events as client
from realtime.session.client_events import ClientEvent
from realtime.tools import ToolNotice

if TYPE_CHECKING:
    from realtime.guards.budgets import Budget

from realtime.kernel import text as textrules


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Client → relay (the commands: realtime.kernel.commands)
# ---------------------------------------------------------------------------------------------


def _playback_fields(message: dict[str, Any]) -> Playback:
    item_id = message.get("item_id")
    played_ms = message.get("played_ms")
    if not isinstance(item_id, str) or not item_id:
        raise ClientProtocolError("missing_field", "'item_id' must be a non-empty string")
    if isinstance(played_ms, bool) or not isinstance(played_ms, int | float) or played_ms < 0:
        raise ClientProtocolError("invalid_field", "'played_ms' must be a number ≥ 0")
    return Playback(item_id=item_id, played_ms=int(played_ms))


def _parse_user_message(message: dict[str, Any]) -> UserMessage:
    text = message.get("text")
    if not isinstance(text, str):
        raise ClientProtocolError("missing_field", "user_message needs a 'text' string")
    if not text.strip():
        raise ClientProtocolError("invalid_field", "user_message 'text' is empty")
    return UserMessage(text=text)


def _parse_interrupt(message: dict[str, Any]) -> Interrupt:
    if "item_id" in message or "played_ms" in message:
        return Interrupt(playback=_playback_fields(message))
    return Interrupt()


_PARSERS: dict[str, Callable[[dict[str, Any]], ClientCommand]] = {
    "user_message": _parse_user_message,
    "playback": _playback_fields,
    "interrupt": _parse_interrupt,
    "commit": lambda message: Commit(),
}


ExtensionParser = Callable[[str, dict[str, Any]], object | None]


def parse_client_text(text: str, extensions: ExtensionParser | None = None) -> object:
    """Validate one client text frame against the allow-list; raise ClientProtocolError.

    ``extensions`` parses the deployment's enabled extension messages (extensions.client_messages):
    it returns a command, or None for a type that is not enabled.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ClientProtocolError("invalid_utf8", "text frame is not valid UTF-8") from None
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ClientProtocolError("invalid_json", "text frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise ClientProtocolError("invalid_message", "a message must be a JSON object")
    if textrules.may_hold_invalid(text):  # a lone surrogate or NUL (realtime/kernel/text.py)
        invalid = textrules.find_invalid(message)
        if invalid is not None:
            where, problem = invalid
            where = where if len(where) <= 80 else where[:80] + "…"
            raise ClientProtocolError(
                "invalid_field", f"{where!r} holds {problem}; send valid Unicode text"
            )
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ClientProtocolError("invalid_message", "a message needs a 'type' string")
    parser = _PARSERS.get(kind)
    if parser is not None:
        return parser(message)
    command = extensions(kind, message) if extensions is not None else None
    if command is None:
        shown = kind if len(kind) <= 40 else kind[:40] + "…"
        raise ClientProtocolError("unknown_type", f"unknown message type {shown!r}")
    return command


def utf8_length_over(text: str, limit: int) -> bool:
    """Is this text longer than ``limit`` UTF-8 bytes? (Cheap for the common short frame.)"""
    return len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


# ---------------------------------------------------------------------------------------------
# Relay → client
# ---------------------------------------------------------------------------------------------


def error_message(code: str, message: str, *, fatal: bool = False) -> str:
    return dumps({"type": "error", "code": code, "message": message, "fatal": fatal})


def control(action: str, **fields: Any) -> str:
    return dumps({"type": "control", "action": action, **fields})


def encode(event: ClientEvent) -> str:
    """One of the session's client events as this protocol's text frame (docs/protocol.md)."""
    return _ENCODERS[type(event)](event)


SPEECH_STARTED = control("speech_started")
SPEECH_STOPPED = control("speech_stopped")
INPUT_TIMEOUT = control("input_timeout")


def _session_info(event: client.SessionInfo) -> str:
    budget = event.budget
    return control(
        "session_info",
        session_id=event.session_id,
        provider=event.provider,
        api=event.api,
        turn_detection=event.turn_detection,
        **({"budget": _budget(budget)} if budget is not None else {}),
        resume_token=event.resume_token,
        resumed=event.resumed,
    )


def _budget(budget: Budget) -> dict[str, Any]:
    """What is left of the user's budget today (null = no limit)."""
    return {
        "seconds_left": budget.seconds_left,
        "tokens_left": budget.tokens_left,
        "connects_per_minute": budget.limits.connects_per_minute or None,
        "resets_at": budget.resets_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _answer_done(event: client.AnswerDone) -> str:
    usage, latency = event.usage, event.latency
    return control(
        "response_done",
        id=event.response_id,
        status=event.status,
        reason=event.reason,
        usage={
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
        latency_ms={
            "first_audio": latency.first_audio,
            "first_text": latency.first_text,
            "relay": latency.relay,
        },
    )


def _tool_call(notice: ToolNotice) -> str:
    """``{"type":"tool_call","name","call_id","status",…}``: arguments and result only where
    the tool lets the client see them (the notice carries them only then)."""
    message: dict[str, Any] = {
        "type": "tool_call",
        "name": notice.name,
        "call_id": notice.call_id,
        "status": notice.status,
    }
    if notice.error is not None:
        message["error"] = notice.error
    if notice.arguments is not None:
        message["arguments"] = notice.arguments
    if notice.result is not None:
        message["result"] = notice.result
    return dumps(message)


_ENCODERS: dict[type, Callable[[Any], str]] = {
    client.Connected: lambda e: control("connected", greeting=e.greeting),
    client.SessionInfo: _session_info,
    client.SessionEnding: lambda e: control("session_ending", seconds_left=e.seconds_left),
    client.UpstreamRenewed: lambda e: control(
        "upstream_renewed", reason=e.reason, upstream=e.upstream
    ),
    client.UsageUpdate: lambda e: control("usage", seconds=e.seconds),
    client.Error: lambda e: error_message(e.code, e.message, fatal=e.fatal),
    client.SpeechStarted: lambda e: SPEECH_STARTED,
    client.SpeechStopped: lambda e: SPEECH_STOPPED,
    client.TranscriptDelta: lambda e: dumps(
        {"type": "transcription_delta", "id": e.item_id, "delta": e.delta}
    ),
    client.Transcript: lambda e: dumps({"type": "transcription", "id": e.item_id, "text": e.text}),
    client.InputTimeout: lambda e: INPUT_TIMEOUT,
    client.AnswerStarted: lambda e: control("response_started", id=e.response_id),
    client.AnswerAudioStart: lambda e: control(
        "audio_start",
        id=f"{e.item_id}-{e.content_index}",
        item_id=e.item_id,
        content_index=e.content_index,
    ),
    client.AnswerAudioDone: lambda e: control("audio_done", id=e.part_id),
    client.AnswerTextDelta: lambda e: dumps(
        {"type": "text_delta", "id": e.part_id, "delta": e.delta}
    ),
    client.AnswerTextDone: lambda e: control("text_done", id=e.part_id),
    client.AnswerDone: _answer_done,
    client.AnswerTruncated: lambda e: control(
        "truncated", item_id=e.item_id, audio_end_ms=e.audio_end_ms
    ),
    ToolNotice: _tool_call,
}
