"""Per-connection state machine: client events in, server events out."""

from __future__ import annotations

import asyncio
import binascii
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from . import config as cfg
from . import events as ev
from .records import ConnectionRecord, Faults
from .responses import ActiveResponse, ResponseRunner
from .transport import EventSocket
from .vad import EnergyVad

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

MAX_APPEND_BYTES = 15 * 1024 * 1024
BYTES_PER_MS = 48
_GA_CLIENT_TYPES = [
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "response.create",
    "response.cancel",
    "output_audio_buffer.clear",
]
CLIENT_TYPES = {
    "ga": _GA_CLIENT_TYPES,
    # Beta has one more: transcription_session.update.
    "beta": [_GA_CLIENT_TYPES[0], "transcription_session.update", *_GA_CLIENT_TYPES[1:]],
}


class ClientError(Exception):
    def __init__(self, code: str | None, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


class Session(EventSocket, ResponseRunner):
    def __init__(
        self,
        ws: ServerConnection,
        record: ConnectionRecord,
        faults: Faults,
        *,
        model: str,
        pace: str,
        echo: bool,
        session_max_seconds: float,
        reply_text: str | None,
    ) -> None:
        assert record.dialect in ("ga", "beta")
        super().__init__(ws, record, faults)
        self.dialect: ev.Dialect = record.dialect
        self.names = ev.NAMES[self.dialect]
        self.pace = pace
        self.echo = echo
        self.reply_text = reply_text
        self.session_max_seconds = session_max_seconds
        self.requested_model = model
        self.session = ev.default_session(
            self.dialect, model, int(time.time() + session_max_seconds)
        )
        self.conversation_id = ev.new_id("conv")
        self.items: list[dict[str, Any]] = []
        self.audio_ms: dict[str, int] = {}  # assistant item id -> ms of audio actually sent
        self.vad = EnergyVad()
        self.buffer_bytes = 0
        self.speech_item_id: str | None = None
        self.speech_start_ms = 0
        self.active: ActiveResponse | None = None
        self.responses_started = 0
        self.audio_sent = False
        self.prev_input_tokens = 0
        self.used_tokens = 0
        self._echo_prefix = '{"type":"' + self.names["audio_delta"] + '","event_id":"event_echo'
        self._echo_mid = (
            '","response_id":"resp_echo","item_id":"item_echo",'
            '"output_index":0,"content_index":0,"delta":"'
        )
        self._echo_seq = 0
        self._apply_config()
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "session.update": self._on_session_update,
            "transcription_session.update": self._on_transcription_session_update,
            "input_audio_buffer.append": self._on_append,
            "input_audio_buffer.commit": self._on_commit,
            "input_audio_buffer.clear": self._on_clear,
            "conversation.item.create": self._on_item_create,
            "conversation.item.delete": self._on_item_delete,
            "conversation.item.retrieve": self._on_item_retrieve,
            "conversation.item.truncate": self._on_item_truncate,
            "response.create": self._on_response_create,
            "response.cancel": self._on_response_cancel,
            "output_audio_buffer.clear": self._on_output_audio_clear,
        }

    # ---- plumbing -------------------------------------------------------------------------

    async def run(self) -> None:
        if self.faults.first_event_delay_ms:
            await asyncio.sleep(self.faults.first_event_delay_ms / 1000)
        await self.send(ev.event("session.created", session=self.session))
        if self.dialect == "beta":
            await self.send(
                ev.event(
                    "conversation.created",
                    conversation={"id": self.conversation_id, "object": "realtime.conversation"},
                )
            )
        expire = self.faults.expire_after_s
        self._spawn(self._expire(self.session_max_seconds if expire is None else expire))
        try:
            async for message in self.ws:
                if self.closing:
                    break
                await self.handle(message)
        except ConnectionClosed:
            pass
        finally:
            self.closing = True
            for task in list(self._tasks):
                task.cancel()
            if self.active is not None and not self.active.task.done():
                self.active.task.cancel()

    def fault_error(self, code: str) -> dict[str, Any]:
        return ev.error(code, "Simulated error injected by a fault.")

    async def _expire(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        minutes = seconds / 60
        limit = f"{minutes:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"
        await self.send(
            ev.error("session_expired", f"Your session hit the maximum duration of {limit}.")
        )
        await self.close(1000, "session expired")

    def _apply_config(self) -> None:
        td = cfg.turn_detection(self.dialect, self.session)
        if td is None or self.echo:
            self.vad.detecting = False
            return
        self.vad.detecting = True
        # semantic_vad is approximated by the energy VAD with default parameters.
        self.vad.configure(
            float(td.get("threshold", 0.5)),
            int(td.get("prefix_padding_ms", 300)),
            int(td.get("silence_duration_ms", 500)),
        )

    # ---- dispatch -------------------------------------------------------------------------

    async def handle(self, message: str | bytes) -> None:
        if self.echo and isinstance(message, str) and "input_audio_buffer.append" in message:
            data = json.loads(message)
            if data.get("type") == "input_audio_buffer.append":
                self.record.appends += 1
                self._echo_seq += 1
                if not (self.stalled or self.closing):
                    audio = data.get("audio", "")
                    seq = self._echo_seq
                    await self.ws.send(f'{self._echo_prefix}{seq}{self._echo_mid}{audio}"}}')
                return
        if isinstance(message, bytes):
            await self.send(ev.error("invalid_event", "Binary frames are not supported."))
            return
        try:
            data = json.loads(message)
        except ValueError as exc:
            await self.send(ev.error("invalid_json", f"Invalid JSON in client event: {exc}."))
            return
        if not isinstance(data, dict):
            await self.send(ev.error("invalid_event", "A client event must be a JSON object."))
            return
        client_event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
        audio = data.get("audio")
        if data.get("type") == "input_audio_buffer.append" and isinstance(audio, str):
            slim = {k: v for k, v in data.items() if k != "audio"}
            slim["audio_bytes"] = len(audio) * 3 // 4 - audio[-2:].count("=")
            self.record.add_received(slim)
        else:
            self.record.add_received(data)
        type_ = data.get("type")
        try:
            if not isinstance(type_, str):
                raise ClientError("invalid_event", "The 'type' field is missing.", "type")
            handler = self._handlers.get(type_)
            if handler is None or type_ not in CLIENT_TYPES[self.dialect]:
                supported = ", ".join(f"'{t}'" for t in CLIENT_TYPES[self.dialect])
                raise ClientError(
                    "invalid_event",
                    f"Invalid value: '{type_}'. Supported values are: {supported}.",
                    "type",
                )
            await handler(data)
        except (ClientError, cfg.ConfigError) as exc:
            await self.send(
                ev.error(exc.code, exc.message, param=exc.param, client_event_id=client_event_id)
            )

    # ---- session --------------------------------------------------------------------------

    async def _on_session_update(self, data: dict[str, Any]) -> None:
        self.session = cfg.merge_update(
            self.dialect, self.session, data.get("session"), self.audio_sent
        )
        self._apply_config()
        await self.send(ev.event("session.updated", session=self.session))

    async def _on_transcription_session_update(self, data: dict[str, Any]) -> None:
        raise ClientError(
            "invalid_value",
            "transcription_session.update is only valid on transcription sessions.",
            "type",
        )

    # ---- input audio ----------------------------------------------------------------------

    async def _on_append(self, data: dict[str, Any]) -> None:
        audio = data.get("audio")
        if not isinstance(audio, str):
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'audio'.", "audio"
            )
        try:
            pcm = binascii.a2b_base64(audio, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise ClientError(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio.", "audio"
            ) from exc
        if len(pcm) > MAX_APPEND_BYTES:
            raise ClientError(
                "invalid_value", "Audio exceeds the 15 MiB limit per append.", "audio"
            )
        self.buffer_bytes += len(pcm)
        for vad_event in self.vad.feed(pcm):
            if vad_event.kind == "start":
                await self._speech_started(vad_event.ms)
            else:
                await self._speech_stopped(vad_event.ms)

    async def _speech_started(self, audio_start_ms: int) -> None:
        self.speech_item_id = ev.new_id("item")
        self.speech_start_ms = audio_start_ms
        await self.send(
            ev.event(
                "input_audio_buffer.speech_started",
                audio_start_ms=audio_start_ms,
                item_id=self.speech_item_id,
            )
        )
        td = cfg.turn_detection(self.dialect, self.session) or {}
        if self.active is not None and td.get("interrupt_response", True):
            await self.cancel_active("turn_detected")

    async def _speech_stopped(self, audio_end_ms: int) -> None:
        item_id = self.speech_item_id or ev.new_id("item")
        await self.send(
            ev.event(
                "input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id
            )
        )
        await self._commit(item_id, audio_end_ms - self.speech_start_ms)
        td = cfg.turn_detection(self.dialect, self.session) or {}
        if td.get("create_response", True) and self.active is None:
            await self.start_response({})

    async def _on_commit(self, data: dict[str, Any]) -> None:
        buffered_ms = self.buffer_bytes / BYTES_PER_MS
        if buffered_ms < 100:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            )
        item_id = self.speech_item_id if self.vad.in_speech and self.speech_item_id else None
        await self._commit(item_id or ev.new_id("item"), int(buffered_ms))

    async def _commit(self, item_id: str, duration_ms: int) -> None:
        usable = self.vad.voiced_windows > 0
        self.buffer_bytes = 0
        self.vad.reset_buffer()
        self.speech_item_id = None
        previous = self.items[-1]["id"] if self.items else None
        await self.send(
            ev.event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        )
        item = ev.user_audio_item(item_id, None)
        item["_audio_ms"] = duration_ms
        await self.add_item(item, previous)
        if cfg.transcription(self.dialect, self.session) is not None:
            await self._transcribe(item, duration_ms, usable)

    async def _transcribe(self, item: dict[str, Any], duration_ms: int, usable: bool) -> None:
        if not usable:
            await self.send(
                ev.event(
                    "conversation.item.input_audio_transcription.failed",
                    item_id=item["id"],
                    content_index=0,
                    error={
                        "type": "transcription_error",
                        "code": "audio_unintelligible",
                        "message": "The audio could not be transcribed.",
                        "param": None,
                    },
                )
            )
            return
        text = f"Simulated transcript of {duration_ms / 1000:.2f} seconds of speech."
        words = text.split(" ")
        for index, word in enumerate(words):
            await self.send(
                ev.event(
                    "conversation.item.input_audio_transcription.delta",
                    item_id=item["id"],
                    content_index=0,
                    delta=word if index == 0 else " " + word,
                )
            )
        item["content"][0]["transcript"] = text
        audio_tokens = max(1, duration_ms // 100)
        out_tokens = ev.text_tokens(text)
        await self.send(
            ev.event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item["id"],
                content_index=0,
                transcript=text,
                usage={
                    "type": "tokens",
                    "total_tokens": audio_tokens + out_tokens,
                    "input_tokens": audio_tokens,
                    "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
                    "output_tokens": out_tokens,
                },
            )
        )

    async def _on_clear(self, data: dict[str, Any]) -> None:
        self.buffer_bytes = 0
        self.vad.reset_buffer()
        self.speech_item_id = None
        await self.send(ev.event("input_audio_buffer.cleared"))

    async def _on_output_audio_clear(self, data: dict[str, Any]) -> None:
        raise ClientError(
            "invalid_event",
            "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
            "type",
        )

    # ---- conversation items ---------------------------------------------------------------

    def find_item(self, item_id: Any) -> dict[str, Any] | None:
        for item in self.items:
            if item["id"] == item_id:
                return item
        return None

    def public_item(self, item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    async def add_item(self, item: dict[str, Any], previous: str | None) -> None:
        self.items.append(item)
        public = self.public_item(item)
        if self.dialect == "ga":
            await self.send(
                ev.event("conversation.item.added", previous_item_id=previous, item=public)
            )
            await self.send(
                ev.event("conversation.item.done", previous_item_id=previous, item=public)
            )
        else:
            await self.send(
                ev.event("conversation.item.created", previous_item_id=previous, item=public)
            )

    async def _on_item_create(self, data: dict[str, Any]) -> None:
        item = data.get("item")
        if not isinstance(item, dict):
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'item'.", "item"
            )
        kind = item.get("type")
        if kind not in ("message", "function_call", "function_call_output"):
            raise ClientError("invalid_value", f"Invalid item type: {kind!r}.", "item.type")
        if kind == "message":
            if item.get("role") not in ("user", "assistant", "system"):
                raise ClientError("invalid_value", "Invalid message role.", "item.role")
            if not isinstance(item.get("content"), list):
                raise ClientError(
                    "missing_required_parameter",
                    "Missing required parameter: 'item.content'.",
                    "item.content",
                )
        if kind == "function_call_output" and "call_id" not in item:
            raise ClientError(
                "missing_required_parameter",
                "Missing required parameter: 'item.call_id'.",
                "item.call_id",
            )
        item = {**item, "object": "realtime.item", "status": item.get("status", "completed")}
        item.setdefault("id", ev.new_id("item"))
        if self.find_item(item["id"]) is not None:
            raise ClientError(
                "item_create_duplicate_id",
                f"Item with id '{item['id']}' already exists.",
                "item.id",
            )
        previous = data.get("previous_item_id")
        if previous is not None and self.find_item(previous) is None:
            raise ClientError(
                "invalid_value",
                f"Previous item with id '{previous}' does not exist.",
                "previous_item_id",
            )
        if previous is None and self.items:
            previous = self.items[-1]["id"]
        await self.add_item(item, previous)

    async def _on_item_delete(self, data: dict[str, Any]) -> None:
        item = self.find_item(data.get("item_id"))
        if item is None:
            raise ClientError(
                "item_delete_invalid_item_id",
                f"Error deleting item: the item with id '{data.get('item_id')}' does not exist.",
                "item_id",
            )
        self.items.remove(item)
        await self.send(ev.event("conversation.item.deleted", item_id=item["id"]))

    async def _on_item_retrieve(self, data: dict[str, Any]) -> None:
        item = self.find_item(data.get("item_id"))
        if item is None:
            raise ClientError(
                "item_retrieve_invalid_item_id",
                f"Error retrieving item: the item with id '{data.get('item_id')}' does not exist.",
                "item_id",
            )
        await self.send(ev.event("conversation.item.retrieved", item=self.public_item(item)))

    async def _on_item_truncate(self, data: dict[str, Any]) -> None:
        item_id = data.get("item_id")
        item = self.find_item(item_id)
        if item is None or item.get("role") != "assistant" or item_id not in self.audio_ms:
            raise ClientError(
                "item_truncate_invalid_item_id",
                f"Only assistant messages with audio can be truncated; no such item: '{item_id}'.",
                "item_id",
            )
        content_index = data.get("content_index", 0)
        if content_index != 0:
            raise ClientError(
                "invalid_value", "Invalid 'content_index': must be 0.", "content_index"
            )
        end_ms = data.get("audio_end_ms")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise ClientError(
                "invalid_value", "Invalid 'audio_end_ms': expected a non-negative integer.",
                "audio_end_ms",
            )  # fmt: skip
        produced = self.audio_ms[item_id]
        if end_ms > produced:
            raise ClientError(
                "invalid_value",
                f"Audio content of {produced}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
            )
        self.audio_ms[item_id] = end_ms
        for part in item.get("content", []):
            if "transcript" in part:
                part["transcript"] = ""
        await self.send(
            ev.event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=0,
                audio_end_ms=end_ms,
            )
        )

    # ---- responses ------------------------------------------------------------------------

    async def _on_response_create(self, data: dict[str, Any]) -> None:
        if self.active is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{self.active.id}. Wait until the response is finished before creating a new "
                "one.",
            )
        params = data.get("response") or {}
        if not isinstance(params, dict):
            raise ClientError("invalid_type", "Invalid 'response': expected an object.", "response")
        await self.start_response(params)

    async def _on_response_cancel(self, data: dict[str, Any]) -> None:
        wanted = data.get("response_id")
        if self.active is None or (wanted and wanted != self.active.id):
            raise ClientError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        await self.cancel_active("client_cancelled")
