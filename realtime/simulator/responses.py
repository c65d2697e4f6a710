"""Response generation: deterministic replies, audio/text streaming, tool calls, cancellation.

Pacing ("realtime"): the first audio delta goes out at once, each next one after half the
previous delta's duration, i.e. the service streams at ~2x real time like the real one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import config as cfg
from . import events as ev
from .synth import audio_chunks, transcript_pieces

if TYPE_CHECKING:
    from .session import Session

REALTIME_SPEEDUP = 0.5  # wait this fraction of a delta's duration before the next one
TEXT_DELTA_DELAY_S = 0.02


@dataclass
class ActiveResponse:
    id: str
    task: asyncio.Task[None]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str | None = None


@dataclass
class Plan:
    kind: str  # "message" | "function_call"
    text: str = ""
    tool_name: str = ""
    arguments: str = ""


def _item_text(item: dict[str, Any]) -> str | None:
    for part in item.get("content") or []:
        if part.get("type") in ("input_text", "text", "output_text") and part.get("text"):
            return str(part["text"])
    return None


def _arguments_for(tool: dict[str, Any], text: str) -> str:
    props = ((tool.get("parameters") or {}).get("properties")) or {}
    place = re.search(r"\bin ([A-Z][\w-]*)", text)
    args: dict[str, Any] = {}
    for name, schema in props.items():
        kind = (schema or {}).get("type")
        if kind in ("number", "integer"):
            args[name] = 1
        elif kind == "boolean":
            args[name] = True
        elif kind == "string" and (schema or {}).get("enum"):
            args[name] = schema["enum"][0]
        else:
            args[name] = place.group(1) if place else "simulated"
    return json.dumps(args)


class ResponseRunner:
    """Mixin for Session; everything here runs on the session's state."""

    def _plan(self: Session, params: dict[str, Any]) -> Plan:
        items = params.get("input") if isinstance(params.get("input"), list) else self.items
        last = next(
            (
                i
                for i in reversed(items)
                if i.get("type") == "function_call_output" or i.get("role") == "user"
            ),
            None,
        )
        tools = [
            t
            for t in (params.get("tools") or self.session.get("tools") or [])
            if t.get("type") == "function" and t.get("name")
        ]
        choice = params.get("tool_choice", self.session.get("tool_choice", "auto"))
        if last is None:
            return Plan("message", self.reply_text or "Hello from the simulator. How can I help?")
        if last.get("type") == "function_call_output":
            call = next((i for i in self.items if i.get("call_id") == last.get("call_id")), None)
            name = call.get("name") if call else "function"
            return Plan(
                "message",
                self.reply_text
                or f"The {name} function returned {last.get('output', '')}. That is the answer.",
            )
        text = _item_text(last)
        if text is None:
            transcript = next(
                (p.get("transcript") for p in last.get("content") or [] if p.get("transcript")),
                None,
            )
            seconds = last.get("_audio_ms", 0) / 1000
            text = transcript or f"{seconds:.2f} seconds of speech"
            reply = f"I heard {seconds:.2f} seconds of speech. This is the simulator speaking."
        else:
            reply = f"You said: {text}. This is the simulator speaking."
        if tools and choice != "none":
            lowered = text.lower()
            for tool in tools:
                name = tool["name"]
                forced = isinstance(choice, dict) and choice.get("name") == name
                if (
                    forced
                    or choice == "required"
                    or name.lower() in lowered
                    or name.lower().replace("_", " ") in lowered
                ):
                    return Plan(
                        "function_call", tool_name=name, arguments=_arguments_for(tool, text)
                    )
        return Plan("message", self.reply_text or reply)

    async def start_response(self: Session, params: dict[str, Any]) -> None:
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
        first_response = self.responses_started == 1

        def response(status: str, output: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return ev.response_object(
                dialect, response_id, conversation_id, status=status,
                modalities=["audio"] if audio else ["text"], voice=voice, output=output,
                metadata=metadata, **extra,
            )  # fmt: skip

        await self.send(ev.event("response.created", response=response("in_progress", [])))
        item_id = ev.new_id("item")
        previous = self.items[-1]["id"] if self.items and in_conversation else None
        common = {"response_id": response_id, "item_id": item_id, "output_index": 0}

        if plan.kind == "function_call":
            call_id = ev.new_id("call")
            item = ev.function_call_item(item_id, call_id, plan.tool_name, "", "in_progress")
            await self._item_started(response_id, item, previous, in_conversation)
            half = len(plan.arguments) // 2
            for piece in (plan.arguments[:half], plan.arguments[half:]):
                await self.send(
                    ev.event(
                        "response.function_call_arguments.delta",
                        **common,
                        call_id=call_id,
                        delta=piece,
                    )
                )
                await self._pause(0 if self.pace == "fast" else TEXT_DELTA_DELAY_S)
            done = {"arguments": plan.arguments, "call_id": call_id}
            if dialect == "ga":
                done["name"] = plan.tool_name
            await self.send(ev.event("response.function_call_arguments.done", **common, **done))
            item = ev.function_call_item(
                item_id, call_id, plan.tool_name, plan.arguments, "completed"
            )
            await self._finish(response_id, item, previous, in_conversation, response, "", 0)
            return

        item = ev.assistant_item(item_id, "in_progress", [])
        await self._item_started(response_id, item, previous, in_conversation)
        await self.send(
            ev.event(
                "response.content_part.added", **common, content_index=0,
                part=ev.content_part(audio, ""),
            )
        )  # fmt: skip
        sent_text: list[str] = []
        if audio:
            self.audio_ms[item_id] = 0
            chunks = audio_chunks(plan.text)
            pieces = transcript_pieces(plan.text, len(chunks))
            for (b64, nbytes), piece in zip(chunks, pieces, strict=True):
                if self._cancelled():
                    break
                if piece:
                    sent_text.append(piece)
                    await self.send(
                        ev.event(self.names["transcript_delta"], **common, content_index=0,
                                 delta=piece)
                    )  # fmt: skip
                await self.send(
                    ev.event(self.names["audio_delta"], **common, content_index=0, delta=b64),
                    delta_bytes=nbytes,
                )
                self.audio_ms[item_id] += nbytes // 48
                self.audio_sent = True
                if await self._maybe_close_mid_response(first_response):
                    return
                delay = 0 if self.pace == "fast" else nbytes / 48 / 1000 * REALTIME_SPEEDUP
                await self._pause(delay)
        else:
            for index, word in enumerate(plan.text.split(" ")):
                if self._cancelled():
                    break
                piece = word if index == 0 else " " + word
                sent_text.append(piece)
                await self.send(
                    ev.event(self.names["text_delta"], **common, content_index=0, delta=piece)
                )
                if await self._maybe_close_mid_response(first_response):
                    return
                await self._pause(0 if self.pace == "fast" else TEXT_DELTA_DELAY_S)
        text = "".join(sent_text)
        if audio:
            await self.send(ev.event(self.names["audio_done"], **common, content_index=0))
            await self.send(
                ev.event(self.names["transcript_done"], **common, content_index=0, transcript=text)
            )
        else:
            await self.send(ev.event(self.names["text_done"], **common, content_index=0, text=text))
        await self.send(
            ev.event(
                "response.content_part.done", **common, content_index=0,
                part=ev.content_part(audio, text),
            )
        )  # fmt: skip
        status = "incomplete" if self._cancelled() else "completed"
        item = ev.assistant_item(item_id, status, [ev.assistant_content(dialect, audio, text)])
        audio_ms = self.audio_ms.get(item_id, 0)
        await self._finish(response_id, item, previous, in_conversation, response, text, audio_ms)

    async def _maybe_close_mid_response(self: Session, first_response: bool) -> bool:
        if self.faults.close_mid_response and first_response:
            await self.close(1011, "simulated failure mid-response")
            return True
        return False

    async def _item_started(
        self: Session,
        response_id: str,
        item: dict[str, Any],
        previous: str | None,
        in_conversation: bool,
    ) -> None:
        await self.send(
            ev.event("response.output_item.added", response_id=response_id, output_index=0,
                     item=item)
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

    async def _finish(
        self: Session,
        response_id: str,
        item: dict[str, Any],
        previous: str | None,
        in_conversation: bool,
        response: Any,
        text: str,
        audio_ms: int,
    ) -> None:
        reason = self.active.cancel_reason if self.active else None
        await self.send(
            ev.event("response.output_item.done", response_id=response_id, output_index=0,
                     item=item)
        )  # fmt: skip
        if in_conversation:
            self.items.append(item)
            if self.dialect == "ga":
                await self.send(
                    ev.event("conversation.item.done", previous_item_id=previous, item=item)
                )
        usage = self._usage(text or item.get("arguments", ""), audio_ms)
        if reason:
            status_details = {"type": "cancelled", "reason": reason}
            done = response("cancelled", [item], usage=usage, status_details=status_details)
        else:
            done = response("completed", [item], usage=usage)
        self.used_tokens += usage["total_tokens"]
        if self.active is not None and self.active.id == response_id:
            self.active = None
        await self.send(ev.event("response.done", response=done))
        await self.send(ev.rate_limits(self.used_tokens))

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
