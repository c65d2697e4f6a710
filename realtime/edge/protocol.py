"""The client protocol (docs/protocol.md): pure code, no I/O, no Django.

Client → relay: text frames are validated against an allow-list and parsed into commands.
Relay → client: message builders. The canonical part is byte-compatible with the other
middle tiers of the sample family: compact JSON, field names and order as documented.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realtime.kernel import text as textrules


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Client → relay
# ---------------------------------------------------------------------------------------------


class ClientProtocolError(Exception):
    """Bad client input: reported to the client as a non-fatal error message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class UserMessage:
    text: str


@dataclass(frozen=True, slots=True)
class Playback:
    """The client's exact figure of how much of an assistant audio item it played."""

    item_id: str
    played_ms: int


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Stop the current answer; optionally with the client's exact playback figure."""

    playback: Playback | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    """End a spoken turn (manual turns): commit the buffered audio and ask for an answer."""


ClientCommand = UserMessage | Playback | Interrupt | Commit


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


def text_delta(part_id: str, delta: str) -> str:
    return dumps({"type": "text_delta", "id": part_id, "delta": delta})


def transcription(item_id: str, text: str) -> str:
    return dumps({"type": "transcription", "id": item_id, "text": text})


def transcription_delta(item_id: str, delta: str) -> str:
    return dumps({"type": "transcription_delta", "id": item_id, "delta": delta})


def audio_start(item_id: str, content_index: int) -> str:
    return control(
        "audio_start",
        id=f"{item_id}-{content_index}",
        item_id=item_id,
        content_index=content_index,
    )


SPEECH_STARTED = control("speech_started")
SPEECH_STOPPED = control("speech_stopped")
