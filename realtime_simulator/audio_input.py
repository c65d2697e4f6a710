"""Input audio: appends, VAD turns, commits, transcription and the server-VAD idle timeout.

Idle timeout (``idle_timeout_ms``, server VAD only): the timer starts when a response ends,
at the moment its audio would have finished playing (first audio delta + its duration; at once
for text), and when a user turn ends. It is measured twice, whichever elapses first: on the
input-audio clock (the audio the client streams; deterministic) and on the wall clock (for
clients that stream nothing). Speech or a new response stops it. When it elapses:
``input_audio_buffer.timeout_triggered``, the buffer is committed as an ``input_audio`` item,
then a response (the reply asks whether the user is still there).
"""

from __future__ import annotations

import asyncio
import binascii
from typing import TYPE_CHECKING, Any

from . import config as cfg
from . import events as ev
from .errors import ClientError
from .live.codec import decode_input
from .transcripts import transcript_text
from .utterances import recognise
from .vad import WINDOW_MS, Segment

if TYPE_CHECKING:
    from .session import Session

MAX_APPEND_BYTES = 15 * 1024 * 1024
BYTES_PER_MS = 48


class AudioInput:
    """Mixin for Session; everything here runs on the session's state."""

    async def _on_append(self: Session, data: dict[str, Any]) -> None:
        audio = data.get("audio")
        if not isinstance(audio, str):
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'audio'.", "audio"
            )
        try:
            raw = binascii.a2b_base64(audio, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise ClientError(
                "invalid_value", "Invalid 'audio'. Expected base64-encoded audio.", "audio"
            ) from exc
        if len(raw) > MAX_APPEND_BYTES:
            raise ClientError(
                "invalid_value", "Audio exceeds the 15 MiB limit per append.", "audio"
            )
        fmt = self.in_format
        # the buffer is counted as PCM16 24 kHz bytes (its duration), whatever the format
        self.buffer_bytes += len(raw) * BYTES_PER_MS // fmt.bytes_per_ms
        pcm = decode_input(fmt, raw)  # PCM16 at the format's rate, for the VAD
        for vad_event in self.vad.feed(pcm):
            if vad_event.kind == "start":
                await self._speech_started(vad_event.ms)
            elif vad_event.kind == "stop":
                assert vad_event.segment is not None
                await self._speech_stopped(vad_event.ms, vad_event.segment)
            elif self.idle_start_ms is not None:
                assert vad_event.segment is not None
                await self._idle_timeout(vad_event.ms, vad_event.segment)

    async def _speech_started(self: Session, audio_start_ms: int) -> None:
        self.disarm_idle()
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

    async def _speech_stopped(self: Session, audio_end_ms: int, segment: Segment) -> None:
        item_id = self.speech_item_id or ev.new_id("item")
        await self.send(
            ev.event(
                "input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id
            )
        )
        await self._commit(item_id, audio_end_ms - self.speech_start_ms, segment)
        self.arm_idle(audio_end_ms, 0.0)
        td = cfg.turn_detection(self.dialect, self.session) or {}
        if td.get("create_response", True) and self.active is None:
            await self.start_response({})

    async def _on_commit(self: Session, data: dict[str, Any]) -> None:
        buffered_ms = self.buffer_bytes / BYTES_PER_MS
        if buffered_ms < 100:
            raise ClientError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"100ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
            )
        item_id = self.speech_item_id if self.vad.in_speech and self.speech_item_id else None
        await self._commit(item_id or ev.new_id("item"), int(buffered_ms), self.vad.take_segment())

    async def _commit(
        self: Session,
        item_id: str,
        duration_ms: int,
        segment: Segment,
        idle_timeout_ms: int | None = None,
    ) -> None:
        self.buffer_bytes = 0
        self.speech_item_id = None
        previous = self.items[-1]["id"] if self.items else None
        await self.send(
            ev.event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        )
        item = ev.user_audio_item(item_id, None)
        item["_audio_ms"] = duration_ms
        # What the simulated model hears, whether or not transcription is on.
        item["_heard"] = recognise(segment)
        if idle_timeout_ms is not None:
            item["_idle_timeout"] = idle_timeout_ms
        await self.add_item(item, previous)
        config = cfg.transcription(self.dialect, self.session)
        if config is not None:
            await self._transcribe(item, duration_ms, segment.voiced_windows > 0, config)

    async def _transcribe(
        self: Session, item: dict[str, Any], duration_ms: int, usable: bool, config: dict[str, Any]
    ) -> None:
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
        text = transcript_text(item["_heard"], duration_ms, config)
        for index, word in enumerate(text.split(" ")):
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

    async def _on_clear(self: Session, data: dict[str, Any]) -> None:
        self.buffer_bytes = 0
        self.vad.take_segment()
        self.speech_item_id = None
        await self.send(ev.event("input_audio_buffer.cleared"))

    # ---- idle timeout ---------------------------------------------------------------------

    def arm_idle(self: Session, start_ms: int, playback_wait_s: float) -> None:
        """Start the idle timer from ``start_ms`` on the input clock (``playback_wait_s``
        from now on the wall clock); a no-op unless server VAD has ``idle_timeout_ms``."""
        self.disarm_idle()
        timeout = None if self.echo else cfg.idle_timeout_ms(self.dialect, self.session)
        if timeout is None or self.vad.in_speech or self.closing:
            return
        self.idle_start_ms = start_ms
        self.vad.idle_deadline_ms = start_ms + timeout
        self._idle_task = self._spawn(self._idle_wall(playback_wait_s + timeout / 1000))

    def disarm_idle(self: Session) -> None:
        self.idle_start_ms = None
        self.vad.idle_deadline_ms = None
        if self._idle_task is not None:
            if self._idle_task is not asyncio.current_task():
                self._idle_task.cancel()
            self._idle_task = None

    def rearm_idle(self: Session) -> None:
        """The settings changed: keep a running timer's start, apply the new timeout."""
        if self.idle_start_ms is not None:
            self.arm_idle(self.idle_start_ms, 0.0)

    async def _idle_wall(self: Session, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.idle_start_ms is not None and not self.closing:
            await self._idle_timeout(self.vad.clock_ms, self.vad.take_segment())

    async def _idle_timeout(self: Session, audio_end_ms: int, segment: Segment) -> None:
        start_ms = min(self.idle_start_ms or 0, audio_end_ms)
        timeout = cfg.idle_timeout_ms(self.dialect, self.session) or 0
        self.disarm_idle()
        item_id = ev.new_id("item")
        await self.send(
            ev.event(
                "input_audio_buffer.timeout_triggered",
                audio_start_ms=start_ms,
                audio_end_ms=audio_end_ms,
                item_id=item_id,
            )
        )
        buffered_ms = len(segment.envelope) * WINDOW_MS
        await self._commit(item_id, buffered_ms, segment, idle_timeout_ms=timeout)
        if self.active is None:
            await self.start_response({})
