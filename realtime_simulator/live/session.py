"""Per-connection GPT-Live state machine: client commands in, server events out."""

from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import json
import re
import time
import typing
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import pydantic
from openai.types.live.client_event import ClientEvent
from websockets.exceptions import ConnectionClosed

from ..planning import asks_recall, recall_reply
from ..records import ConnectionRecord, Faults
from ..transport import EventSocket
from ..vad import EnergyVad
from . import config as cfg
from . import events as lev
from .codec import AudioFormat, decode_input
from .delegation import ACKNOWLEDGEMENT, Delegations
from .schema import LiveError, check_model, invalid, missing
from .speech import Speaker, Timeline

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

MAX_APPEND_BYTES = 15 * 1024 * 1024
MAX_APPEND_TOKENS = 500  # instructions / thinking / commentary appends
NOT_SIMULATED = {
    "session.output_audio.fixture.play",
    "decision.create",
    "decision.item.create",
    "decision.item.delete",
}


def _client_models() -> dict[str, type[pydantic.BaseModel]]:
    union = typing.get_args(typing.get_args(ClientEvent)[0])
    return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in union}


CLIENT_MODELS = _client_models()


class LiveSession(EventSocket):
    def __init__(
        self,
        ws: ServerConnection,
        record: ConnectionRecord,
        faults: Faults,
        *,
        pace: str,
        echo: bool,
        session_max_seconds: float,
        reply_text: str | None,
        transcripts: Iterable[str] = (),
        usage_interval_s: float | None = None,
    ) -> None:
        super().__init__(ws, record, faults)
        self.pace = pace
        self.echo = echo
        self.session_max_seconds = session_max_seconds
        self.reply_text = reply_text
        self.usage_interval_s = usage_interval_s
        self.transcripts = collections.deque(transcripts)
        self.resource: dict[str, Any] | None = None
        self.fmt = AudioFormat.from_config(cfg.DEFAULT_FORMAT)
        self.vad = EnergyVad()
        self.muted = False
        self.timeline = Timeline(realtime=pace == "realtime")
        self.speaker = Speaker(self)
        self.delegations = Delegations(self)
        self.speech_start_ms = 0
        self.finished = False
        # What the user said, in order (startup input, utterances, typed commentary): quoted
        # back when they ask "what did I say" (the recall convention, planning.py).
        self.user_said: list[str] = []
        self._acks: set[asyncio.Task[None]] = set()
        self._handlers: dict[str, Callable[[dict[str, Any], str | None], Awaitable[None]]] = {
            "session.start": self._on_start,
            "session.update": self._on_update,
            "session.input_audio.append": self._on_append,
            "session.input_audio.mute": self._on_mute,
            "session.input_audio.unmute": self._on_mute,
            "session.instructions.append": self._on_context,
            "session.thinking.append": self._on_context,
            "session.commentary.append": self._on_context,
            "response.item.create": self._on_item_create,
            "response.create": self._on_response_create,
            "session.close": self._on_close,
        }

    event = staticmethod(lev.event)

    def fault_error(self, code: str) -> dict[str, Any]:
        return lev.error(code, "Simulated error injected by a fault.")

    async def send(self, event: dict[str, Any], delta_bytes: int | None = None) -> None:
        # session.closed is terminal: nothing (speech, usage, backend events) may follow it.
        if not self.finished or event["type"] == "session.closed":
            await super().send(event, delta_bytes)

    # ---- plumbing -------------------------------------------------------------------------

    async def run(self) -> None:
        self._spawn(self.speaker.run())
        try:
            async for message in self.ws:
                if self.closing:
                    break
                await self.handle(message)
        except ConnectionClosed:
            pass
        finally:
            self.closing = True
            for task in [*self._tasks, *self._acks]:
                task.cancel()

    async def handle(self, message: str | bytes) -> None:
        if self.echo and isinstance(message, str) and '"session.input_audio.append"' in message:
            with contextlib.suppress(ValueError):
                data = json.loads(message)
                if isinstance(data, dict) and data.get("type") == "session.input_audio.append":
                    await self._echo(data)
                    return
        if isinstance(message, bytes):
            await self.send(lev.error("invalid_event", "Binary frames are not supported."))
            return
        try:
            data = json.loads(message)
        except ValueError as exc:
            await self.send(lev.error("invalid_json", f"Invalid JSON in client event: {exc}."))
            return
        if not isinstance(data, dict):
            await self.send(lev.error("invalid_event", "A client event must be a JSON object."))
            return
        self._record(data)
        raw_id = data.get("event_id")
        client_event_id = raw_id if isinstance(raw_id, str) else None
        try:
            await self._dispatch(data, client_event_id)
        except LiveError as exc:
            await self.send(
                lev.error(exc.code, exc.message, param=exc.param, client_event_id=client_event_id)
            )

    def _record(self, data: dict[str, Any]) -> None:
        audio = data.get("audio")
        if data.get("type") == "session.input_audio.append" and isinstance(audio, str):
            slim = {k: v for k, v in data.items() if k != "audio"}
            slim["audio_bytes"] = len(audio) * 3 // 4 - audio[-2:].count("=")
            self.record.add_received(slim)
        else:
            self.record.add_received(data)

    async def _dispatch(self, data: dict[str, Any], client_event_id: str | None) -> None:
        type_ = data.get("type")
        model = CLIENT_MODELS.get(type_) if isinstance(type_, str) else None
        if model is None:
            supported = ", ".join(f"'{t}'" for t in CLIENT_MODELS)
            raise LiveError(
                "invalid_event", f"Invalid value: {type_!r}. Supported values are: {supported}.",
                "type",
            )  # fmt: skip
        if type_ in NOT_SIMULATED:
            raise invalid("type", f"'{type_}' is not simulated by the offline simulator.")
        if self.resource is None and type_ != "session.start":
            raise LiveError(
                "session_not_started", "Send session.start and wait for session.started first."
            )
        check_model(data, model, "")
        await self._handlers[str(type_)](data, client_event_id)

    async def _echo(self, data: dict[str, Any]) -> None:
        """Echo mode (benchmarks): each append comes straight back as one output delta; no
        session.start needed, no VAD, nothing recorded but the count."""
        self.record.appends += 1
        if not (self.stalled or self.closing):
            audio = json.dumps(data.get("audio", ""))
            await self.ws.send(f'{{"type":"session.output_audio.delta","delta":{audio}}}')

    def say(self, text: str, kind: str) -> None:
        self.speaker.say(text, kind, self.timeline.now())

    def acknowledge(self, delay_ms: int) -> None:
        """The automatic spoken acknowledgement of a delegation (cancelled by any commentary
        or thinking appended before the delay is up)."""
        if delay_ms <= 0:
            self.say(ACKNOWLEDGEMENT, "acknowledgement")
            return

        async def later() -> None:
            await asyncio.sleep(delay_ms / 1000)
            self.say(ACKNOWLEDGEMENT, "acknowledgement")

        task = asyncio.ensure_future(later())
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)

    async def report_usage(self) -> None:
        seconds = self.timeline.now() // 1000
        await self.send(lev.event("session.usage.updated", usage=lev.usage(seconds)))

    async def _usage_ticker(self, interval: float) -> None:
        while not self.closing:
            await asyncio.sleep(interval)
            await self.report_usage()

    async def finish(self, reason: str, client_event_id: str | None = None) -> None:
        """session.closed (final snapshot + usage), then a normal close of the socket."""
        self.speaker.stop()
        self.finished = True
        assert self.resource is not None
        usage = lev.usage(self.timeline.now() // 1000)
        closed = lev.event(
            "session.closed", client_event_id, reason=reason, session=self.resource, usage=usage
        )
        await self.send(closed)
        await self.close(1000, reason)

    async def _expire(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self.finish("expired")

    # ---- session --------------------------------------------------------------------------

    async def _on_start(self, data: dict[str, Any], client_event_id: str | None) -> None:
        if self.resource is not None:
            raise LiveError("session_already_started", "The session has already started.")
        expires_at = int(time.time() + self.session_max_seconds)
        resource = cfg.resolve_start(data["session"], expires_at)
        self.fmt = AudioFormat.from_config(resource["audio"]["format"])
        self.vad = EnergyVad(rate=self.fmt.rate)
        if self.faults.first_event_delay_ms:
            await asyncio.sleep(self.faults.first_event_delay_ms / 1000)
        self.resource = resource
        self.user_said = [
            str(item["content"][0]["text"]) for item in items_of(resource) if item["role"] == "user"
        ]
        self.timeline = Timeline(realtime=self.pace == "realtime")
        await self.send(lev.event("session.started", client_event_id, session=resource))
        expire = self.faults.expire_after_s
        self._spawn(self._expire(self.session_max_seconds if expire is None else expire))
        if self.usage_interval_s:
            self._spawn(self._usage_ticker(self.usage_interval_s))

    async def _on_update(self, data: dict[str, Any], client_event_id: str | None) -> None:
        assert self.resource is not None
        self.resource = cfg.merge_update(self.resource, data["session"])
        await self.send(lev.event("session.updated", client_event_id, session=self.resource))

    async def _on_close(self, data: dict[str, Any], client_event_id: str | None) -> None:
        await self.finish("close_requested", client_event_id)

    async def _on_mute(self, data: dict[str, Any], client_event_id: str | None) -> None:
        self.muted = data["type"] == "session.input_audio.mute"
        acknowledged = "muted" if self.muted else "unmuted"
        await self.send(lev.event(f"session.input_audio.{acknowledged}", client_event_id))

    # ---- input audio ----------------------------------------------------------------------

    async def _on_append(self, data: dict[str, Any], client_event_id: str | None) -> None:
        try:
            raw = binascii.a2b_base64(data["audio"], strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise invalid("audio", "Invalid 'audio'. Expected base64-encoded audio.") from exc
        if len(raw) > MAX_APPEND_BYTES:
            raise invalid("audio", "Audio exceeds the 15 MiB limit per append.")
        pcm = decode_input(self.fmt, raw)
        if self.muted:  # the SDK: a mute feeds the model silence
            pcm = bytes(len(pcm))
        for vad_event in self.vad.feed(pcm):
            self.timeline.input_ms = max(self.timeline.input_ms, vad_event.ms)
            if vad_event.kind == "start":
                self.speech_start_ms = vad_event.onset_ms
                self.speaker.user_started()  # barge-in: the model yields
            else:
                await self._user_spoke(vad_event.ms)
                self.speaker.user_stopped(vad_event.ms)
        self.timeline.input_ms = self.vad.clock_ms

    async def _user_spoke(self, stop_ms: int) -> None:
        start = self.speech_start_ms
        end = max(start, stop_ms - self.vad.silence_duration_ms)
        scripted = bool(self.transcripts)
        seconds = (end - start) / 1000
        text = (
            self.transcripts.popleft()
            if scripted
            else f"Simulated transcript of {seconds:.2f} seconds of speech."
        )
        words = text.split(" ")
        step = (end - start) / max(1, len(words))
        for index, word in enumerate(words):
            await self.send(
                lev.event(
                    "session.input_transcript.delta",
                    delta=word if index == 0 else " " + word,
                    start_ms=start + int(index * step),
                    end_ms=start + int((index + 1) * step),
                )
            )
        earlier, self.user_said = self.user_said, [*self.user_said, text]
        if await self.delegations.maybe_delegate(text, stop_ms):
            return
        if asks_recall(text):
            reply = recall_reply(earlier)
        elif self.reply_text is not None:
            reply = self.reply_text
        elif scripted:
            reply = f"You said: {text}. This is the simulator speaking."
        else:
            reply = f"I heard {seconds:.2f} seconds of speech. This is the simulator speaking."
        self.speaker.say(reply, "reply", stop_ms)

    # ---- context appends ------------------------------------------------------------------

    async def _on_context(self, data: dict[str, Any], client_event_id: str | None) -> None:
        if "delegation_id" not in data:  # Required, nullable
            raise missing("delegation_id")
        content, delegation_id = data["content"], data["delegation_id"]
        if lev.text_tokens(content) > MAX_APPEND_TOKENS:
            raise invalid("content", f"Content is limited to {MAX_APPEND_TOKENS} tokens.")
        self.delegations.check_append(delegation_id)
        kind = str(data["type"]).split(".")[1]  # instructions | thinking | commentary
        now = self.timeline.now()
        await self.send(
            lev.event(f"session.{kind}.appended", client_event_id, start_ms=now, end_ms=now)
        )
        if kind == "instructions":
            return
        for task in list(self._acks):
            task.cancel()
        if kind != "commentary":
            return
        if delegation_id is not None:
            self.say(content, "delegation_result")
            return
        # The words the user typed, not the relay's wrapper around them: JSON arguments in
        # them are escaped inside the wrapper's quotes.
        said = typed_text(content)
        earlier, self.user_said = self.user_said, [*self.user_said, said]
        if await self.delegations.maybe_delegate(said, now):
            return
        if asks_recall(said):
            self.say(recall_reply(earlier), "commentary")
        else:
            self.say(self.reply_text or f"You said: {said}. This is the simulator speaking.",
                     "commentary")  # fmt: skip

    # ---- responses backend ----------------------------------------------------------------

    async def _on_item_create(self, data: dict[str, Any], client_event_id: str | None) -> None:
        self.delegations.item_create(data["item"])

    async def _on_response_create(self, data: dict[str, Any], client_event_id: str | None) -> None:
        self.delegations.response_create()


def items_of(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return list(resource.get("input") or [])


_TYPED = re.compile(r'^The user typed[^:]*: ("(?:[^"\\]|\\.)*")\. Reply', re.S)


def typed_text(content: str) -> str:
    """What a user typed, when a relay passes it on as ``The user typed: "…". Reply …``
    commentary (the relay's convention, docs/gpt-live.md); else the commentary itself. A real
    model answers the words, not the wrapper around them."""
    match = _TYPED.match(content)
    if match is None:
        return content
    try:
        return str(json.loads(match.group(1)))
    except ValueError:
        return content
