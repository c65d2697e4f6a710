"""What each upstream event means for the client, the counters and barge-in.

``RelaySession`` (``core.py``) reads the upstream and dispatches each neutral event
(``realtime.kernel.events``) to the handler this mixin maps it to; the handlers use the session's
port, counters, audio tracker, barge-in state and tool turns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from realtime.edge import protocol
from realtime.kernel.endings import SessionEnded
from realtime.kernel.events import (
    AudioDelta,
    AudioDone,
    BackendUsage,
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
    ToolTurnEnded,
    Truncated,
    UpstreamEnded,
    UpstreamError,
    UpstreamFrames,
    UsageReport,
)
from realtime.ops import metrics
from realtime.session.states import OPEN
from realtime.tools import ToolNotice

if TYPE_CHECKING:
    from realtime.session.core import RelaySession

log = logging.getLogger("realtime.session")


class UpstreamEventHandlers:
    def event_handlers(self: RelaySession) -> dict[type, Callable[[Any], Awaitable[None]]]:
        return {
            AudioDelta: self._on_audio_delta,
            TextDelta: self._on_text_delta,
            TextDone: self._on_text_done,
            AudioDone: self._on_audio_done,
            SpeechStarted: self._on_speech_started,
            SpeechStopped: self._on_speech_stopped,
            InputTranscriptDelta: self._on_transcript_delta,
            InputTranscript: self._on_transcript,
            InputTranscriptFailed: self._on_transcript_failed,
            InputTimeout: self._on_input_timeout,
            ResponseStarted: self._on_response_started,
            ResponseDone: self._on_response_done,
            Truncated: self._on_truncated,
            ToolCall: self._on_tool_call,
            ToolTurnEnded: self._on_tool_turn_ended,
            UsageReport: self._on_usage_report,
            BackendUsage: self._on_backend_usage,
            UpstreamFrames: self._on_upstream_frames,
            UpstreamError: self._on_upstream_error,
            UpstreamEnded: self._on_upstream_ended,
        }

    async def _on_audio_delta(self: RelaySession, event: AudioDelta) -> None:
        if self.tracker.is_cut(event.item_id):
            return  # the user interrupted this item: late audio must not play
        pcm = event.pcm
        if self.tracker.sent(event.item_id, event.content_index, len(pcm), time.monotonic()):
            await self.port.send_text(protocol.audio_start(event.item_id, event.content_index))
        counters = self.counters
        counters.audio_bytes_out += len(pcm)
        counters.frames_out += 1
        self.meter.reply_audio()
        await self.port.send_bytes(pcm)

    async def _on_text_delta(self: RelaySession, event: TextDelta) -> None:
        self.conversation.answer_delta(event.part_id, event.delta)
        await self.port.send_text(protocol.text_delta(event.part_id, event.delta))

    async def _on_text_done(self: RelaySession, event: TextDone) -> None:
        self.conversation.answer_done(event.part_id)
        await self.port.send_text(protocol.control("text_done", id=event.part_id))

    async def _on_audio_done(self: RelaySession, event: AudioDone) -> None:
        await self.port.send_text(protocol.control("audio_done", id=event.part_id))

    async def _on_speech_started(self: RelaySession, event: SpeechStarted) -> None:
        self.counters.speech_turns += 1
        self.meter.turn_reset()
        await self.port.send_text(protocol.SPEECH_STARTED)
        self._cut_audio()

    async def _on_speech_stopped(self: RelaySession, event: SpeechStopped) -> None:
        self.meter.speech_stopped()
        await self.port.send_text(protocol.SPEECH_STOPPED)

    async def _on_transcript_delta(self: RelaySession, event: InputTranscriptDelta) -> None:
        await self.port.send_text(protocol.transcription_delta(event.item_id, event.delta))

    async def _on_transcript(self: RelaySession, event: InputTranscript) -> None:
        self.conversation.add("user", "spoken", event.text, item_id=event.item_id)
        await self.port.send_text(protocol.transcription(event.item_id, event.text))

    async def _on_transcript_failed(self: RelaySession, event: InputTranscriptFailed) -> None:
        await self.port.send_text(
            protocol.error_message(
                "transcription_failed", f"input transcription failed: {event.message}"
            )
        )

    async def _on_input_timeout(self: RelaySession, event: InputTimeout) -> None:
        await self.port.send_text(protocol.control("input_timeout"))

    async def _on_response_started(self: RelaySession, event: ResponseStarted) -> None:
        self._answer_active = True
        self._awaiting_answer = False
        self._cancel_sent = False  # a new answer: not cancelled yet
        await self.port.send_text(protocol.control("response_started", id=event.response_id))

    async def _on_response_done(self: RelaySession, event: ResponseDone) -> None:
        self._answer_active = False
        usage = event.usage
        self.counters.add_usage(usage)
        self._check_budget()  # before anything else can ask for the next answer
        self.meter.turn_reset()
        await self.port.send_text(
            protocol.control(
                "response_done",
                id=event.response_id,
                status=event.status,
                reason=event.reason,
                usage={
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "total_tokens": usage.total_tokens,
                },
            )
        )
        if self.upstream.answers_block_requests:  # the answer is the tool turn (Realtime API)
            self.tools.turn_ended(cancelled=event.status == "cancelled")
        if self._answer_wanted:
            self._answer_wanted = False
            self._ask_for_answer([])

    async def _on_tool_call(self: RelaySession, event: ToolCall) -> None:
        frames = self.tools.call(event.call_id, event.name, event.arguments)
        if frames:
            self._enqueue(frames)

    async def _on_tool_turn_ended(self: RelaySession, event: ToolTurnEnded) -> None:
        self.tools.turn_ended(cancelled=event.cancelled)

    def _tool_notice(self: RelaySession, notice: ToolNotice) -> None:
        if notice.status != "started":  # arguments/results only where the tool shows them
            self.conversation.add(
                "tool",
                "call",
                notice.name,
                item_id=notice.call_id,
                status=notice.status,
                error=notice.error,
                duration_ms=notice.duration_ms,
                arguments=notice.arguments,
                result=notice.result,
            )
        if self.state in OPEN:
            self._send_soon(protocol.dumps(notice.to_message()))

    async def _on_usage_report(self: RelaySession, event: UsageReport) -> None:
        """Billed session time so far (cumulative): recorded, and shown to the client."""
        if event.seconds > self.counters.upstream_seconds:
            self.counters.upstream_seconds = event.seconds
            if self.state in OPEN:
                await self.port.send_text(protocol.control("usage", seconds=event.seconds))

    async def _on_backend_usage(self: RelaySession, event: BackendUsage) -> None:
        self.counters.add_tokens(event.usage)
        self._check_budget()  # GPT-Live: the delegated backend's answer is billed in tokens

    async def _on_upstream_frames(self: RelaySession, event: UpstreamFrames) -> None:
        self._enqueue(event.frames)

    async def _on_truncated(self: RelaySession, event: Truncated) -> None:
        await self.port.send_text(
            protocol.control("truncated", item_id=event.item_id, audio_end_ms=event.audio_end_ms)
        )

    async def _on_upstream_error(self: RelaySession, event: UpstreamError) -> None:
        self.counters.errors += 1
        self._awaiting_answer = False  # a refused request brings no answer: no stall watch
        metrics.count_upstream_error(event.code)
        if event.code == "response_cancel_not_active" and self._cancel_sent:
            # Our cancel crossed the answer's own end: nothing the client should hear about.
            log.debug("session %s: cancel arrived after the answer ended", self.id)
            return
        log.warning("session %s: upstream error %s", self.id, event.code)
        await self.port.send_text(protocol.error_message(event.code, event.message))

    async def _on_upstream_ended(self: RelaySession, event: UpstreamEnded) -> None:
        self.counters.errors += 1
        metrics.count_upstream_error(event.code or event.ending.code)
        log.warning("session %s: upstream ended the session (%s)", self.id, event.ending.code)
        raise SessionEnded(event.ending)
