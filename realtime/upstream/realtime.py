"""The Realtime API family: OpenAI GA, Azure GA and the legacy Azure preview (beta) dialect.

Handshake: connect through the SDK, send ``session.update``, wait for ``session.updated``
(an ``error`` instead means the settings were refused). Then each upstream event becomes at
most one neutral event; both dialects' event names are understood.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from typing import Any

from realtime.compat.sdk import raw_socket
from realtime.kernel import endings
from realtime.kernel.endings import SessionEnded
from realtime.kernel.events import (
    AudioDelta,
    AudioDone,
    Event,
    InputTimeout,
    InputTranscript,
    InputTranscriptDelta,
    InputTranscriptFailed,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    ToolCall,
    Truncated,
    UpstreamEnded,
    UpstreamError,
    Usage,
)
from realtime.kernel.history import EMPTY, Snapshot
from realtime.upstream.adapter import UpstreamAdapter
from realtime.upstream.clients import close_connection, enter, websocket_options
from realtime.upstream.realtime_session import replay_items, session_update

log = logging.getLogger("realtime.upstream")

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


def _json(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"))


def _part(event: dict[str, Any]) -> str:
    return f"{event.get('item_id')}-{event.get('content_index', 0)}"


def usage_of(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    inp = usage.get("input_token_details") or {}
    out = usage.get("output_token_details") or {}
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        input_text_tokens=int(inp.get("text_tokens") or 0),
        input_audio_tokens=int(inp.get("audio_tokens") or 0),
        cached_tokens=int(inp.get("cached_tokens") or 0),
        output_text_tokens=int(out.get("text_tokens") or 0),
        output_audio_tokens=int(out.get("audio_tokens") or 0),
    )


def translate_event(event: dict[str, Any]) -> Event | None:
    """One Realtime API server event (either dialect) → the session's event, if it has one."""
    kind = event.get("type")
    if kind in AUDIO_DELTA:
        try:
            pcm = base64.b64decode(event.get("delta", ""), validate=True)
        except (binascii.Error, ValueError):
            return None
        return AudioDelta(str(event.get("item_id")), int(event.get("content_index") or 0), pcm)
    if kind in TEXT_DELTA:
        return TextDelta(_part(event), event.get("delta", ""))
    if kind in TEXT_DONE:
        return TextDone(_part(event))
    if kind in AUDIO_DONE:
        return AudioDone(_part(event))
    if kind == "input_audio_buffer.speech_started":
        return SpeechStarted()
    if kind == "input_audio_buffer.speech_stopped":
        return SpeechStopped()
    if kind == "conversation.item.input_audio_transcription.delta":
        return InputTranscriptDelta(str(event.get("item_id")), event.get("delta", ""))
    if kind == "conversation.item.input_audio_transcription.completed":
        return InputTranscript(str(event.get("item_id")), event.get("transcript", ""))
    if kind == "conversation.item.input_audio_transcription.failed":
        err = event.get("error") or {}
        return InputTranscriptFailed(str(err.get("message") or "unknown reason"))
    if kind == "input_audio_buffer.timeout_triggered":
        return InputTimeout()
    if kind == "response.created":
        return ResponseStarted(str((event.get("response") or {}).get("id")))
    if kind == "response.done":
        response = event.get("response") or {}
        details = response.get("status_details") or {}
        return ResponseDone(
            str(response.get("id")),
            response.get("status"),
            details.get("reason"),
            usage_of(response.get("usage")),
        )
    if kind == "response.output_item.done":
        item = event.get("item") or {}
        if item.get("type") == "function_call":
            return ToolCall(
                str(item.get("call_id")), str(item.get("name")), item.get("arguments") or "{}"
            )
        return None
    if kind == "conversation.item.truncated":
        return Truncated(str(event.get("item_id")), int(event.get("audio_end_ms") or 0))
    if kind == "error":
        err = event.get("error") or {}
        code = str(err.get("code") or err.get("type") or "upstream_error")
        if code == "session_expired":
            return UpstreamEnded(endings.UPSTREAM_SESSION_EXPIRED, code)
        return UpstreamError(
            code, str(err.get("message") or "the realtime service reported an error")
        )
    return None


class RealtimeAdapter(UpstreamAdapter):
    api = "realtime"

    audio_prefix = '{"type":"input_audio_buffer.append"'

    _connection: Any = None

    async def open(self, history: Snapshot = EMPTY) -> None:
        config = self.config
        client = self.clients.client(config)
        realtime = client.beta.realtime if config.dialect == "beta" else client.realtime
        manager = realtime.connect(
            model=config.model, websocket_connection_options=websocket_options(config)
        )
        self._connection = await enter(manager, config)
        raw = raw_socket(self._connection)
        self.send, self.recv, self.write_now = raw.send, raw.recv, raw.write_now
        await self.send(_json(session_update(config, config.dialect, self.tools.realtime_tools())))
        async with asyncio.timeout(config.connect_timeout_s):
            while True:
                event = json.loads(await self.recv())
                kind = event.get("type")
                if kind in ("session.created", "session.updated"):
                    self.learn(event.get("session"))
                if kind == "session.updated":
                    break
                if kind == "error":
                    err = event.get("error") or {}
                    raise SessionEnded(
                        endings.UPSTREAM_SESSION_REJECTED.because(
                            "the realtime service rejected the session settings: "
                            f"{err.get('message') or err.get('code')}"
                        )
                    )
        if history:
            await self._replay(history)

    async def _replay(self, history: Snapshot) -> None:
        """The conversation so far, as items created before the session goes live; each
        is acknowledged (``conversation.item.added``, beta ``…created``) or refused (an
        ``error`` naming its event id: logged, the rest goes on)."""
        items = replay_items(history, self.config.dialect)
        for n, item in enumerate(items):
            event = {"type": "conversation.item.create", "event_id": f"relay_replay_{n}"}
            await self.send(_json(event | {"item": item}))
        added = (
            "conversation.item.added"
            if self.config.dialect == "ga"
            else "conversation.item.created"
        )
        waiting, refused = len(items), 0
        async with asyncio.timeout(self.config.connect_timeout_s):
            while waiting:
                event = json.loads(await self.recv())
                kind = event.get("type")
                if kind == added:
                    waiting -= 1
                elif kind == "error":
                    err = event.get("error") or {}
                    if str(err.get("event_id") or "").startswith("relay_replay_"):
                        waiting, refused = waiting - 1, refused + 1
                        log.warning(
                            "replaying the conversation: the realtime service refused an item (%s)",
                            err.get("code"),
                        )
        log.debug("replayed %d item(s) (%d refused)", len(items), refused)

    def translate(self, frame: bytes | str, now: float) -> list[Event]:
        event = translate_event(json.loads(frame))
        return [] if event is None else [event]

    def audio_frame(self, pcm: bytes) -> str:
        # Built by hand: this runs ~50 times a second per session; no dict, no json.dumps.
        return (
            '{"type":"input_audio_buffer.append","audio":"' + base64.b64encode(pcm).decode() + '"}'
        )

    def user_text(self, text: str) -> list[str]:
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        return [_json({"type": "conversation.item.create", "item": item})]

    def request_answer(self) -> list[str]:
        return ['{"type":"response.create"}']

    def cancel_answer(self) -> list[str]:
        return ['{"type":"response.cancel"}']

    def commit_audio(self) -> list[str]:
        return ['{"type":"input_audio_buffer.commit"}']

    def tool_result(self, call_id: str, output: str) -> list[str]:
        item = {"type": "function_call_output", "call_id": call_id, "output": output}
        return [_json({"type": "conversation.item.create", "item": item})]

    def system_message(self, text: str) -> list[str]:
        content = [{"type": "input_text", "text": text}]
        item = {"type": "message", "role": "system", "content": content}
        return [_json({"type": "conversation.item.create", "item": item})]

    def truncate(self, item_id: str, content_index: int, heard_ms: int) -> list[str]:
        if heard_ms <= 0:  # nothing was heard: the model should not remember saying it
            return [_json({"type": "conversation.item.delete", "item_id": item_id})]
        event = {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": content_index,
            "audio_end_ms": heard_ms,
        }
        return [_json(event)]

    async def close(self) -> list[Event]:
        connection, self._connection = self._connection, None
        if connection is not None:
            await close_connection(connection)
        return []
