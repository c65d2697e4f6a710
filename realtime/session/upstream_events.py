"""What each upstream event means for the client, the record, the counters and turn-taking.

The session's reader (``reader.py``) dispatches each neutral event (``realtime.kernel.events``)
to the handler ``UpstreamEvents.handlers`` maps it to. ``UpstreamEvents`` is one of the
collaborators a ``RelaySession`` (``core.py``) holds: it tells the client (``client_events``),
keeps the answer state and the audio tracker up to date, and hands barge-in and requests for
answers to turn-taking (``turn_taking.py``) and tool calls to the tool turns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.kernel.counters import SessionCounters
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
from realtime.kernel.history import History
from realtime.ops import metrics
from realtime.records.conversation import Conversation
from realtime.session import client_events as client
from realtime.session.answers import Answers
from realtime.session.client_events import ClientEvent
from realtime.session.latency import AnswerClock
from realtime.session.playback import AudioTracker
from realtime.session.ports import ClientPort
from realtime.session.renewal_watch import BilledTime, RenewalWatch
from realtime.session.tool_turns import ToolTurns
from realtime.session.turn_taking import TurnTaking
from realtime.tools import ToolNotice
from realtime.upstream import UpstreamAdapter

log = logging.getLogger("realtime.session")


class UpstreamEvents:
    def __init__(
        self,
        *,
        session_id: Any,
        upstream: UpstreamAdapter,
        port: ClientPort,
        notify: Callable[[ClientEvent], None],
        is_open: Callable[[], bool],
        counters: SessionCounters,
        meter: metrics.SessionMeter,
        conversation: Conversation,
        history: History,
        answers: Answers,
        tracker: AudioTracker,
        turns: TurnTaking,
        tools: ToolTurns,
        renewal: RenewalWatch,
        answer_counted: Callable[[], None],
        clock: AnswerClock,
        received: Callable[[], float],
        audio_scale: int = 1,
    ) -> None:
        """``notify(event)``: tell the client without waiting; ``is_open()``: the session has
        not begun to end (no more notices then); ``answer_counted()``: an answer's usage was
        counted (the daily budget is checked before anything more goes upstream); ``clock``: the
        answers' latency; ``received()``: when the reader took the last upstream frame."""
        self.id = session_id
        self.upstream = upstream  # the session switches it (renewal)
        self.port = port
        self.notify = notify
        self.is_open = is_open
        self.counters = counters
        self.meter = meter
        self.conversation = conversation
        self.history = history
        self.answers = answers
        self.tracker = tracker
        self.turns = turns
        self.tools = tools
        self.renewal = renewal  # when the user speaks: no renewal then
        self.billed = BilledTime()  # upstream seconds, added up over upstream sessions
        self.answer_counted = answer_counted
        self.clock = clock
        self.received = received
        # audio counted as PCM16 24 kHz bytes whatever the format (μ-law: ×6)
        self._audio_scale = audio_scale

    def handlers(self) -> dict[type, Callable[[Any], Awaitable[None]]]:
        """The handler of each kind of upstream event (the reader dispatches on the type)."""
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

    async def upstream_lost(self, status: str, reason: str) -> None:
        """The upstream that was serving is gone (a renewal, a failure): what it was doing
        ends here. An answer is reported ended with ``status`` (the client stops waiting for
        it), tool calls are cancelled, a pending truncation only cuts the history, and an
        answer that was asked for but not started is asked again (of the next upstream)."""
        answers, turns = self.answers, self.turns
        asked = answers.awaiting or answers.wanted
        self.tools.cancel()
        turns.barge_in.settle(None)
        if answers.active:
            answers.wanted = False  # asked again below, once
            await self._on_response_done(ResponseDone(answers.response_id, status, reason))
        self.history.answers_cut()
        self.conversation.close()  # the record keeps cut answers as far as they went
        self.tracker.forget()
        answers.reset()
        self.renewal.turn_lost()
        if asked and self.upstream.request_answer():  # GPT-Live answers on its own
            turns.ask_for_answer([])

    async def _on_audio_delta(self, event: AudioDelta) -> None:
        if self.tracker.is_cut(event.item_id):
            return  # the user interrupted this item: late audio must not play
        pcm = event.pcm
        if self.tracker.sent(event.item_id, event.content_index, len(pcm), time.monotonic()):
            await self.port.send_event(client.AnswerAudioStart(event.item_id, event.content_index))
        counters = self.counters
        counters.audio_bytes_out += len(pcm) * self._audio_scale
        counters.frames_out += 1
        await self.port.send_audio(pcm)
        if self.clock.audio_due:  # the first of an answer: its latency
            self.clock.audio_written(self.received())

    async def _on_text_delta(self, event: TextDelta) -> None:
        self.conversation.answer_delta(event.part_id, event.delta)
        self.history.answer_delta(event.part_id, event.delta)
        await self.port.send_event(client.AnswerTextDelta(event.part_id, event.delta))
        if self.clock.text_due:
            self.clock.text_written()

    async def _on_text_done(self, event: TextDone) -> None:
        self.conversation.answer_done(event.part_id)
        self.history.answer_done(event.part_id)
        await self.port.send_event(client.AnswerTextDone(event.part_id))

    async def _on_audio_done(self, event: AudioDone) -> None:
        await self.port.send_event(client.AnswerAudioDone(event.part_id))

    async def _on_speech_started(self, event: SpeechStarted) -> None:
        self.counters.speech_turns += 1
        self.clock.speech()
        self.renewal.speech(True)
        await self.port.send_event(client.SpeechStarted())
        self.turns.cut_audio()

    async def _on_speech_stopped(self, event: SpeechStopped) -> None:
        self.clock.turn_ended()  # the user's turn ends: the answer's clock starts
        self.renewal.speech(False)
        await self.port.send_event(client.SpeechStopped())

    async def _on_transcript_delta(self, event: InputTranscriptDelta) -> None:
        await self.port.send_event(client.TranscriptDelta(event.item_id, event.delta))

    async def _on_transcript(self, event: InputTranscript) -> None:
        self.conversation.add("user", "spoken", event.text, item_id=event.item_id)
        self.history.user(event.text)
        self.renewal.transcribed()
        await self.port.send_event(client.Transcript(event.item_id, event.text))

    async def _on_transcript_failed(self, event: InputTranscriptFailed) -> None:
        self.renewal.transcribed()
        await self.port.send_event(
            client.Error("transcription_failed", f"input transcription failed: {event.message}")
        )

    async def _on_input_timeout(self, event: InputTimeout) -> None:
        await self.port.send_event(client.InputTimeout())

    async def _on_response_started(self, event: ResponseStarted) -> None:
        self.answers.started(event.response_id)
        await self.port.send_event(client.AnswerStarted(event.response_id))

    async def _on_response_done(self, event: ResponseDone) -> None:
        wanted = self.answers.done()
        self.counters.add_usage(event.usage)
        self.answer_counted()  # the budget check holds the outbox: the next answer waits for it
        latency = self.clock.answer_done()
        self.meter.answer(latency)
        await self.port.send_event(
            client.AnswerDone(event.response_id, event.status, event.reason, event.usage, latency)
        )
        if self.upstream.answers_block_requests:  # the answer is the tool turn (Realtime API)
            self.tools.turn_ended(cancelled=event.status == "cancelled")
        if wanted:  # asked for while this one was active: ask now
            self.turns.ask_for_answer([])

    async def _on_tool_call(self, event: ToolCall) -> None:
        frames = self.tools.call(event.call_id, event.name, event.arguments)
        if frames:
            self.turns.enqueue(frames)

    async def _on_tool_turn_ended(self, event: ToolTurnEnded) -> None:
        self.tools.turn_ended(cancelled=event.cancelled)

    def tool_notice(self, notice: ToolNotice) -> None:
        """A tool call started or ended (``ToolTurns``): recorded, and shown to the client."""
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
        if self.is_open():
            self.notify(notice)

    async def _on_usage_report(self, event: UsageReport) -> None:
        """Billed session time so far (cumulative): recorded, and shown to the client."""
        seconds = self.billed.billed(event.seconds)  # the upstream's count: of its session
        if seconds > self.counters.upstream_seconds:
            self.counters.upstream_seconds = seconds
            if self.is_open():
                await self.port.send_event(client.UsageUpdate(seconds))

    async def _on_backend_usage(self, event: BackendUsage) -> None:
        self.counters.add_tokens(event.usage)
        self.answer_counted()  # GPT-Live: the delegated backend's answer is billed in tokens

    async def _on_upstream_frames(self, event: UpstreamFrames) -> None:
        self.turns.enqueue(event.frames)

    async def _on_truncated(self, event: Truncated) -> None:
        await self.port.send_event(client.AnswerTruncated(event.item_id, event.audio_end_ms))

    async def _on_upstream_error(self, event: UpstreamError) -> None:
        self.counters.errors += 1
        own_race = self.answers.refused(event.code)  # a refused request brings no answer
        metrics.count_upstream_error(event.code)
        if own_race:
            # Our cancel crossed the answer's own end: nothing the client should hear about.
            log.debug("session %s: cancel arrived after the answer ended", self.id)
            return
        log.warning("session %s: upstream error %s", self.id, event.code)
        await self.port.send_event(client.Error(event.code, event.message))

    async def _on_upstream_ended(self, event: UpstreamEnded) -> None:
        self.counters.errors += 1
        metrics.count_upstream_error(event.code or event.ending.code)
        log.warning("session %s: upstream ended the session (%s)", self.id, event.ending.code)
        raise SessionEnded(event.ending, event.code)
