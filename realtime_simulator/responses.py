"""Response streaming: audio/text replies, function calls, cancellation (what to say is in
planning.py).

Pacing ("realtime"): the first audio delta goes out at once, each next one after half the
previous delta's duration, i.e. the service streams at ~2x real time like the real one does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import config as cfg
from . import events as ev
from .live.codec import AudioFormat, encode_output
from .planning import Plan, ToolCall, plan_response
from .synth import audio_chunks, transcript_pieces

if TYPE_CHECKING:
    from .session import Session

REALTIME_SPEEDUP = 0.5  # wait this fraction of a delta's duration before the next one
TEXT_DELTA_DELAY_S = 0.02
ResponseBuilder = Callable[..., dict[str, Any]]


@dataclass
class ActiveResponse:
    id: str
    task: asyncio.Task[None]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str | None = None
    # When its first audio delta went out (input clock ms, loop time): playback starts there.
    first_audio: tuple[int, float] | None = None


class ResponseRunner:
    """Mixin for Session; everything here runs on the session's state."""

    def _plan(self: Session, params: dict[str, Any]) -> Plan:
        given = params.get("input")
        context: list[dict[str, Any]] = given if isinstance(given, list) else self.items
        tools = params.get("tools") or self.session.get("tools") or []
        return plan_response(
            context,
            self.items,
            tools=[t for t in tools if isinstance(t, dict)],
            choice=params.get("tool_choice", self.session.get("tool_choice", "auto")),
            parallel=params.get("parallel_tool_calls", self.session.get("parallel_tool_calls"))
            is not False,
            reply_text=self.reply_text,
            prompt=params["prompt"] if "prompt" in params else self.session.get("prompt"),
        )

    async def start_response(self: Session, params: dict[str, Any]) -> None:
        self.disarm_idle()
        response_id = ev.new_id("resp")
        task = asyncio.ensure_future(self._run_response(response_id, params))
        self.active = ActiveResponse(response_id, task)
        self.responses_started += 1

    async def cancel_active(self: Session, reason: str) -> None:
        active = self.active
        if active is None:
            return
        active.cancel_reason = reason
        active.wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(active.task)

    async def _pause(self: Session, seconds: float) -> None:
        active = self.active
        if active is None:
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(active.wake.wait(), seconds)

    def _cancelled(self: Session) -> bool:
        return self.active is None or self.active.cancel_reason is not None or self.closing

    async def _run_response(self: Session, response_id: str, params: dict[str, Any]) -> None:
        try:
            await self._generate(response_id, params)
        finally:
            if self.active is not None and self.active.id == response_id:
                self.active = None

    async def _generate(self: Session, response_id: str, params: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # let start_response register self.active first
        dialect = self.dialect
        in_conversation = params.get("conversation", "auto") != "none"
        conversation_id = self.conversation_id if in_conversation else None
        if dialect == "ga":
            modalities = params.get("output_modalities") or self.session["output_modalities"]
        else:
            modalities = params.get("modalities") or self.session["modalities"]
        audio = "audio" in modalities
        voice = cfg.voice(dialect, self.session)
        metadata = params.get("metadata")
        plan = self._plan(params)

        def response(status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return ev.response_object(
                dialect, response_id, conversation_id, status=status,
                modalities=["audio"] if audio else ["text"], voice=voice, output=output,
                metadata=metadata, **extra,
            )  # fmt: skip

        await self.send(ev.event("response.created", response=response("in_progress", [])))
        previous = self.items[-1]["id"] if self.items and in_conversation else None
        if plan.kind == "function_call":
            output: list[dict[str, Any]] = []
            for index, call in enumerate(plan.calls):
                if index and self._cancelled():
                    break
                item = await self._stream_call(response_id, index, call, previous, in_conversation)
                output.append(item)
                previous = item["id"]
            arguments = "".join(item["arguments"] for item in output)
            await self._response_done(response_id, output, response, arguments, 0)
            return
        await self._stream_message(
            response_id, plan.text, audio, previous, in_conversation, response
        )

    async def _stream_call(
        self: Session,
        response_id: str,
        output_index: int,
        call: ToolCall,
        previous: str | None,
        in_conversation: bool,
    ) -> dict[str, Any]:
        item_id = ev.new_id("item")
        call_id = ev.new_id("call")
        common = {"response_id": response_id, "item_id": item_id, "output_index": output_index}
        item = ev.function_call_item(item_id, call_id, call.name, "", "in_progress")
        await self._item_started(response_id, output_index, item, previous, in_conversation)
        half = len(call.arguments) // 2
        for piece in (call.arguments[:half], call.arguments[half:]):
            await self.send(
                ev.event("response.function_call_arguments.delta", **common, call_id=call_id,
                         delta=piece)
            )  # fmt: skip
            await self._pause(0 if self.pace == "fast" else TEXT_DELTA_DELAY_S)
        done = {"arguments": call.arguments, "call_id": call_id}
        if self.dialect == "ga":
            done["name"] = call.name
        await self.send(ev.event("response.function_call_arguments.done", **common, **done))
        item = ev.function_call_item(item_id, call_id, call.name, call.arguments, "completed")
        await self._item_done(response_id, output_index, item, previous, in_conversation)
        return item

    async def _stream_message(
        self: Session,
        response_id: str,
        text: str,
        audio: bool,
        previous: str | None,
        in_conversation: bool,
        response: ResponseBuilder,
    ) -> None:
        dialect = self.dialect
        nth_response = self.responses_started
        item_id = ev.new_id("item")
        common = {"response_id": response_id, "item_id": item_id, "output_index": 0}
        item = ev.assistant_item(item_id, "in_progress", [])
        await self._item_started(response_id, 0, item, previous, in_conversation)
        await self.send(
            ev.event(
                "response.content_part.added", **common, content_index=0,
                part=ev.content_part(audio, ""),
            )
        )  # fmt: skip
        sent_text: list[str] = []
        if audio:
            self.audio_ms[item_id] = 0
            chunks = audio_chunks(text)
            out_format = self.out_format
            per_ms = out_format.bytes_per_ms
            if out_format.type != "audio/pcm":  # G.711: the synthesised 24 kHz, converted
                chunks = [_converted(out_format, b64) for b64, _ in chunks]
            pieces = transcript_pieces(text, len(chunks))
            for (b64, nbytes), piece in zip(chunks, pieces, strict=True):
                if self._cancelled():
                    break
                if piece:
                    sent_text.append(piece)
                    await self.send(
                        ev.event(self.names["transcript_delta"], **common, content_index=0,
                                 delta=piece)
                    )  # fmt: skip
                if self.active is not None and self.active.first_audio is None:
                    loop_time = asyncio.get_running_loop().time()
                    self.active.first_audio = (self.vad.clock_ms, loop_time)
                await self.send(
                    ev.event(self.names["audio_delta"], **common, content_index=0, delta=b64),
                    delta_bytes=nbytes,
                )
                self.audio_ms[item_id] += nbytes // per_ms
                self.audio_sent = True
                if await self._maybe_close_mid_response(nth_response):
                    return
                delay = 0 if self.pace == "fast" else nbytes / per_ms / 1000 * REALTIME_SPEEDUP
                await self._pause(delay)
        else:
            for index, word in enumerate(text.split(" ")):
                if self._cancelled():
                    break
                piece = word if index == 0 else " " + word
                sent_text.append(piece)
                await self.send(
                    ev.event(self.names["text_delta"], **common, content_index=0, delta=piece)
                )
                if await self._maybe_close_mid_response(nth_response):
                    return
                await self._pause(0 if self.pace == "fast" else TEXT_DELTA_DELAY_S)
        said = "".join(sent_text)
        if audio:
            await self.send(ev.event(self.names["audio_done"], **common, content_index=0))
            await self.send(
                ev.event(self.names["transcript_done"], **common, content_index=0, transcript=said)
            )
        else:
            await self.send(ev.event(self.names["text_done"], **common, content_index=0, text=said))
        await self.send(
            ev.event(
                "response.content_part.done", **common, content_index=0,
                part=ev.content_part(audio, said),
            )
        )  # fmt: skip
        status = "incomplete" if self._cancelled() else "completed"
        item = ev.assistant_item(item_id, status, [ev.assistant_content(dialect, audio, said)])
        await self._item_done(response_id, 0, item, previous, in_conversation)
        audio_ms = self.audio_ms.get(item_id, 0)
        await self._response_done(response_id, [item], response, said, audio_ms)

    async def _maybe_close_mid_response(self: Session, nth_response: int) -> bool:
        if nth_response == self.faults.close_mid_answer:
            await self.close(1011, "simulated failure mid-response")
            return True
        return False

    async def _item_started(
        self: Session,
        response_id: str,
        output_index: int,
        item: dict[str, Any],
        previous: str | None,
        in_conversation: bool,
    ) -> None:
        await self.send(
            ev.event("response.output_item.added", response_id=response_id,
                     output_index=output_index, item=item)
        )  # fmt: skip
        if not in_conversation:
            return
        if self.dialect == "ga":
            await self.send(
                ev.event("conversation.item.added", previous_item_id=previous, item=item)
            )
        else:
            await self.send(
                ev.event("conversation.item.created", previous_item_id=previous, item=item)
            )

    async def _item_done(
        self: Session,
        response_id: str,
        output_index: int,
        item: dict[str, Any],
        previous: str | None,
        in_conversation: bool,
    ) -> None:
        await self.send(
            ev.event("response.output_item.done", response_id=response_id,
                     output_index=output_index, item=item)
        )  # fmt: skip
        if in_conversation:
            self.items.append(item)
            if self.dialect == "ga":
                await self.send(
                    ev.event("conversation.item.done", previous_item_id=previous, item=item)
                )

    async def _response_done(
        self: Session,
        response_id: str,
        output: list[dict[str, Any]],
        response: ResponseBuilder,
        produced_text: str,
        audio_ms: int,
    ) -> None:
        active = self.active
        reason = active.cancel_reason if active else None
        usage = self._usage(produced_text, audio_ms)
        if reason:
            status_details = {"type": "cancelled", "reason": reason}
            done = response("cancelled", output, usage=usage, status_details=status_details)
        else:
            done = response("completed", output, usage=usage)
        self.used_tokens += usage["total_tokens"]
        if active is not None and active.id == response_id:
            self.active = None
        await self.send(ev.event("response.done", response=done))
        await self.send(ev.rate_limits(self.used_tokens))
        if self.active is None and active is not None:
            self._arm_idle_after(active, audio_ms)

    def _arm_idle_after(self: Session, finished: ActiveResponse, audio_ms: int) -> None:
        """The idle timeout counts from when the reply's audio has finished playing."""
        clock_ms = self.vad.clock_ms
        if finished.first_audio is None:
            self.arm_idle(clock_ms, 0.0)
            return
        first_clock, first_time = finished.first_audio
        played_until = first_time + audio_ms / 1000
        wait_s = max(0.0, played_until - asyncio.get_running_loop().time())
        self.arm_idle(max(clock_ms, first_clock + audio_ms), wait_s)

    def _usage(self: Session, produced_text: str, audio_ms: int) -> dict[str, Any]:
        in_text = ev.text_tokens(str(self.session.get("instructions") or ""))
        in_audio = 0
        for item in self.items:
            for part in item.get("content") or []:
                in_text += ev.text_tokens(str(part.get("text") or part.get("transcript") or ""))
            in_audio += item.get("_audio_ms", 0) // 100
            in_text += ev.text_tokens(str(item.get("arguments") or item.get("output") or ""))
        cached = (self.prev_input_tokens // 64) * 64
        cached = min(cached, in_text + in_audio)
        self.prev_input_tokens = in_text + in_audio
        return ev.usage(
            self.dialect,
            in_text=in_text,
            in_audio=in_audio,
            cached=cached,
            out_text=ev.text_tokens(produced_text),
            out_audio=audio_ms // 50,
        )


def _converted(fmt: AudioFormat, b64: str) -> tuple[str, int]:
    """One synthesised PCM16 24 kHz delta in the session's output format (base64, bytes)."""
    raw = encode_output(fmt, base64.b64decode(b64))
    return base64.b64encode(raw).decode("ascii"), len(raw)
