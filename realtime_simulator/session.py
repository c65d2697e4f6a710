"""Per-connection state machine: client events in, server events out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from websockets.exceptions import ConnectionClosed

from . import config as cfg
from . import events as ev
from . import validate
from .audio_input import AudioInput
from .errors import ClientError
from .items import ConversationItems
from .live.codec import SYNTH_RATE, AudioFormat
from .records import ConnectionRecord, Faults
from .responses import ActiveResponse, ResponseRunner
from .transport import EventSocket
from .vad import EnergyVad

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

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


class Session(EventSocket, AudioInput, ConversationItems, ResponseRunner):
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
        # the session's audio formats (PCM16 24 kHz until a session.update says otherwise)
        self.in_format = self.out_format = AudioFormat("audio/pcm", SYNTH_RATE)
        self.buffer_bytes = 0
        self.speech_item_id: str | None = None
        self.speech_start_ms = 0
        self.idle_start_ms: int | None = None  # idle timer running since (input clock)
        self._idle_task: asyncio.Task[None] | None = None
        self._idle_timeout_applied: int | None = None
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
                    conversation={
                        "id": self.conversation_id,
                        "object": "realtime.conversation",
                    },
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
        self.out_format = cfg.audio_format(self.dialect, self.session, "output")
        in_format = cfg.audio_format(self.dialect, self.session, "input")
        if in_format != self.in_format:  # the VAD hears the input at its own rate
            self.in_format = in_format
            vad = self.vad
            self.vad = EnergyVad(
                vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms, rate=in_format.rate
            )
            self.vad.detecting = vad.detecting
        td = cfg.turn_detection(self.dialect, self.session)
        if td is None or self.echo:
            self.vad.detecting = False
            self.disarm_idle()
            self._idle_timeout_applied = None
            return
        self.vad.detecting = True
        # semantic_vad: the energy VAD with default threshold and padding; eagerness sets how
        # long it waits after speech (config.EAGERNESS_SILENCE_MS).
        self.vad.configure(
            float(td.get("threshold", 0.5)),
            int(td.get("prefix_padding_ms", 300)),
            cfg.silence_duration_ms(td),
        )
        timeout = cfg.idle_timeout_ms(self.dialect, self.session)
        if timeout is None:
            self.disarm_idle()
        elif timeout != self._idle_timeout_applied:
            self.rearm_idle()
        self._idle_timeout_applied = timeout

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
        except ClientError as exc:
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

    async def _on_output_audio_clear(self, data: dict[str, Any]) -> None:
        raise ClientError(
            "invalid_event",
            "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
            "type",
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
        if self.dialect == "ga" and "output_modalities" in params:
            validate.modalities(
                params["output_modalities"], [{"audio"}, {"text"}], "response.output_modalities"
            )
        if self.dialect == "beta" and "modalities" in params:
            validate.modalities(
                params["modalities"], [{"text"}, {"text", "audio"}], "response.modalities"
            )
        if self.dialect == "ga" and "prompt" in params:
            validate.prompt(params["prompt"], "response.prompt")
        await self.start_response(params)

    async def _on_response_cancel(self, data: dict[str, Any]) -> None:
        wanted = data.get("response_id")
        if self.active is None or (wanted and wanted != self.active.id):
            raise ClientError(
                "response_cancel_not_active", "Cancellation failed: no active response found."
            )
        await self.cancel_active("client_cancelled")
