"""The client protocol ⇄ Realtime API translation: pure code, no I/O, no Django.

Client side: the "simplified middle-tier protocol" (docs/protocol.md). Its canonical part is
byte-compatible with the other middle tiers: compact JSON, field order as documented.
Upstream side: OpenAI / Azure Realtime events in either dialect (GA or beta names).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from realtime.config import RelayConfig

BYTES_PER_MS = 48  # PCM16 mono 24 kHz


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


@dataclass(frozen=True)
class UserMessage:
    text: str


@dataclass(frozen=True)
class Playback:
    """The client's exact figure of how much of an assistant audio item it played."""

    item_id: str
    played_ms: int


@dataclass(frozen=True)
class Interrupt:
    """Stop the current answer; optionally with the client's exact playback figure."""

    playback: Playback | None = None


ClientCommand = UserMessage | Playback | Interrupt


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
}


def parse_client_text(text: str) -> ClientCommand:
    """Validate one client text frame against the allow-list; raise ClientProtocolError."""
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
    kind = message.get("type")
    if not isinstance(kind, str):
        raise ClientProtocolError("invalid_message", "a message needs a 'type' string")
    parser = _PARSERS.get(kind)
    if parser is None:
        shown = kind if len(kind) <= 40 else kind[:40] + "…"
        raise ClientProtocolError("unknown_type", f"unknown message type {shown!r}")
    return parser(message)


def error_message(code: str, message: str, *, fatal: bool = False) -> str:
    return dumps({"type": "error", "code": code, "message": message, "fatal": fatal})


def control(action: str, **fields: Any) -> str:
    return dumps({"type": "control", "action": action, **fields})


class AudioCoalescer:
    """Joins tiny client audio frames into upstream appends without splitting a sample.

    ``feed`` returns a chunk once ``flush_bytes`` have gathered; the consumer flushes the
    remainder on a short timer so the tail of an utterance is never held back.
    """

    def __init__(self, flush_bytes: int, max_bytes: int) -> None:
        self.flush_bytes = max(2, flush_bytes - flush_bytes % 2)
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._odd = b""
        self.dropped_bytes = 0

    def __len__(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> bytes | None:
        if self._odd:
            data = self._odd + data
            self._odd = b""
        if len(data) % 2:
            self._odd = data[-1:]
            data = data[:-1]
        room = self.max_bytes - len(self._buffer)
        if len(data) > room:
            # Bounded: audio held back while upstream is not ready is capped (oldest kept).
            self.dropped_bytes += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._buffer += data
        if len(self._buffer) >= self.flush_bytes:
            return self.drain()
        return None

    def drain(self) -> bytes:
        chunk = bytes(self._buffer)
        self._buffer.clear()
        return chunk


def audio_append(chunk: bytes) -> str:
    # Built by hand: this runs ~50 times a second per session; no dict, no json.dumps.
    return '{"type":"input_audio_buffer.append","audio":"' + base64.b64encode(chunk).decode() + '"}'


# ---------------------------------------------------------------------------------------------
# Upstream session configuration and client-originated events
# ---------------------------------------------------------------------------------------------


def _turn_detection(config: RelayConfig) -> dict[str, Any] | None:
    td = config.turn_detection
    if td is None:
        return None
    body: dict[str, Any] = {"type": td.type}
    if td.type == "server_vad":
        body |= {
            "threshold": td.threshold,
            "prefix_padding_ms": td.prefix_padding_ms,
            "silence_duration_ms": td.silence_duration_ms,
        }
    body |= {"create_response": td.create_response, "interrupt_response": td.interrupt_response}
    return body


def session_update(config: RelayConfig, dialect: str) -> dict[str, Any]:
    transcription = {"model": config.transcription_model} if config.transcription_model else None
    if dialect == "beta":
        return {
            "type": "session.update",
            "session": {
                "modalities": ["text", "audio"],
                "instructions": config.instructions,
                "voice": config.voice,
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "input_audio_transcription": transcription,
                "turn_detection": _turn_detection(config),
            },
        }
    pcm = {"type": "audio/pcm", "rate": 24000}
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "output_modalities": ["audio"],
            "instructions": config.instructions,
            "audio": {
                "input": {
                    "format": pcm,
                    "transcription": transcription,
                    "turn_detection": _turn_detection(config),
                },
                "output": {"format": pcm, "voice": config.voice},
            },
        },
    }


def user_message_events(text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        },
        {"type": "response.create"},
    ]


# ---------------------------------------------------------------------------------------------
# Upstream → client
# ---------------------------------------------------------------------------------------------

TEXT_DELTA = frozenset(
    {
        "response.output_text.delta",
        "response.text.delta",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
    }
)
TEXT_DONE = frozenset(
    {
        "response.output_text.done",
        "response.text.done",
        "response.output_audio_transcript.done",
        "response.audio_transcript.done",
    }
)
AUDIO_DELTA = frozenset({"response.output_audio.delta", "response.audio.delta"})
AUDIO_DONE = frozenset({"response.output_audio.done", "response.audio.done"})


@dataclass
class AudioItem:
    """One assistant audio part as the client receives it."""

    item_id: str
    content_index: int
    first_sent_at: float
    bytes_sent: int = 0

    @property
    def sent_ms(self) -> int:
        return self.bytes_sent // BYTES_PER_MS

    def estimated_played_ms(self, now: float) -> int:
        return min(self.sent_ms, max(0, int((now - self.first_sent_at) * 1000)))


@dataclass(frozen=True)
class Interruption:
    """An assistant audio item cut off by the user: what to tell the model it said."""

    item_id: str
    content_index: int
    sent_ms: int
    estimated_played_ms: int


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    cached_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @classmethod
    def from_event(cls, usage: dict[str, Any] | None) -> Usage:
        if not isinstance(usage, dict):
            return cls()
        inp = usage.get("input_token_details") or {}
        out = usage.get("output_token_details") or {}
        return cls(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            input_text_tokens=int(inp.get("text_tokens") or 0),
            input_audio_tokens=int(inp.get("audio_tokens") or 0),
            cached_tokens=int(inp.get("cached_tokens") or 0),
            output_text_tokens=int(out.get("text_tokens") or 0),
            output_audio_tokens=int(out.get("audio_tokens") or 0),
        )


@dataclass
class Translation:
    """What one upstream event turns into."""

    to_client: list[str | bytes] = field(default_factory=list)
    ready: bool = False  # the session.updated that makes the session live
    speech_started: bool = False
    speech_stopped: bool = False
    interruption: Interruption | None = None
    response_done: dict[str, Any] | None = None
    usage: Usage | None = None
    upstream_error: dict[str, Any] | None = None
    audio_bytes: int = 0


class Translator:
    """Per-session translation state: the audio item on air and the response in progress."""

    def __init__(self) -> None:
        self.audio: AudioItem | None = None
        self.active_response_id: str | None = None
        self._cut_items: deque[str] = deque(maxlen=8)

    def translate(self, event: dict[str, Any], now: float) -> Translation:
        kind = event.get("type")
        out = Translation()
        if kind in AUDIO_DELTA:
            self._audio_delta(event, now, out)
        elif kind in TEXT_DELTA:
            part_id = f"{event.get('item_id')}-{event.get('content_index', 0)}"
            out.to_client.append(
                dumps({"type": "text_delta", "id": part_id, "delta": event.get("delta", "")})
            )
        elif kind in TEXT_DONE:
            part_id = f"{event.get('item_id')}-{event.get('content_index', 0)}"
            out.to_client.append(control("text_done", id=part_id))
        elif kind in AUDIO_DONE:
            part_id = f"{event.get('item_id')}-{event.get('content_index', 0)}"
            out.to_client.append(control("audio_done", id=part_id))
        elif kind == "input_audio_buffer.speech_started":
            out.speech_started = True
            out.to_client.append(control("speech_started"))
            out.interruption = self.interruption(now)
        elif kind == "input_audio_buffer.speech_stopped":
            out.speech_stopped = True
            out.to_client.append(control("speech_stopped"))
        elif kind == "conversation.item.input_audio_transcription.completed":
            out.to_client.append(
                dumps(
                    {
                        "type": "transcription",
                        "id": event.get("item_id"),
                        "text": event.get("transcript", ""),
                    }
                )
            )
        elif kind == "conversation.item.input_audio_transcription.failed":
            err = event.get("error") or {}
            out.to_client.append(
                error_message(
                    "transcription_failed",
                    f"input transcription failed: {err.get('message') or 'unknown reason'}",
                )
            )
        elif kind == "response.created":
            response = event.get("response") or {}
            self.active_response_id = response.get("id")
            out.to_client.append(control("response_started", id=response.get("id")))
        elif kind == "response.done":
            self._response_done(event, out)
        elif kind == "conversation.item.truncated":
            out.to_client.append(
                control(
                    "truncated",
                    item_id=event.get("item_id"),
                    audio_end_ms=event.get("audio_end_ms"),
                )
            )
        elif kind == "session.updated":
            out.ready = True
        elif kind == "error":
            err = event.get("error") or {}
            out.upstream_error = err
            if err.get("code") == "session_expired":
                return out  # fatal: the consumer ends the session with its own message
            out.to_client.append(
                error_message(
                    str(err.get("code") or err.get("type") or "upstream_error"),
                    str(err.get("message") or "the realtime service reported an error"),
                )
            )
        return out

    def _audio_delta(self, event: dict[str, Any], now: float, out: Translation) -> None:
        try:
            pcm = base64.b64decode(event.get("delta", ""), validate=True)
        except (binascii.Error, ValueError):
            return
        item_id = str(event.get("item_id"))
        if item_id in self._cut_items:
            return  # the user interrupted this item: late audio must not play
        content_index = int(event.get("content_index") or 0)
        audio = self.audio
        if audio is None or audio.item_id != item_id or audio.content_index != content_index:
            audio = self.audio = AudioItem(item_id, content_index, first_sent_at=now)
            out.to_client.append(
                control(
                    "audio_start",
                    id=f"{item_id}-{content_index}",
                    item_id=item_id,
                    content_index=content_index,
                )
            )
        audio.bytes_sent += len(pcm)
        out.audio_bytes = len(pcm)
        out.to_client.append(pcm)

    def _response_done(self, event: dict[str, Any], out: Translation) -> None:
        response = event.get("response") or {}
        if response.get("id") == self.active_response_id:
            self.active_response_id = None
        details = response.get("status_details") or {}
        usage = Usage.from_event(response.get("usage"))
        out.usage = usage
        out.response_done = response
        out.to_client.append(
            control(
                "response_done",
                id=response.get("id"),
                status=response.get("status"),
                reason=details.get("reason"),
                usage={
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "total_tokens": usage.input_tokens + usage.output_tokens,
                },
            )
        )

    def interruption(self, now: float) -> Interruption | None:
        """The audio item the client is still playing, if any (its playback is cut now)."""
        audio = self.audio
        if audio is None or audio.bytes_sent == 0:
            return None
        played = audio.estimated_played_ms(now)
        if played >= audio.sent_ms:
            return None  # everything sent was already heard: nothing to truncate
        self.audio = None
        self._cut_items.append(audio.item_id)
        return Interruption(audio.item_id, audio.content_index, audio.sent_ms, played)


def truncate_event(interruption: Interruption, played_ms: int | None) -> dict[str, Any]:
    """What to tell the model it said: truncate at min(played, sent); delete if nothing heard."""
    heard = interruption.estimated_played_ms if played_ms is None else played_ms
    heard = max(0, min(heard, interruption.sent_ms))
    if heard == 0:
        return {"type": "conversation.item.delete", "item_id": interruption.item_id}
    return {
        "type": "conversation.item.truncate",
        "item_id": interruption.item_id,
        "content_index": interruption.content_index,
        "audio_end_ms": heard,
    }
