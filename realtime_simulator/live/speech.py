"""The simulated GPT-Live voice: a session timeline and a speaker that streams one utterance
at a time as `session.output_transcript.delta` + `session.output_audio.delta` pairs.

Same audio and pacing as the Realtime simulator (synth.py syllables, 200 ms deltas; pace
"realtime": first delta at once, then each after half the previous delta's duration; "fast":
no waits). While the user speaks the voice holds: an utterance being spoken when the user
starts is cut (barge-in: the model yields), and queued ones wait until the user stops.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..responses import REALTIME_SPEEDUP
from ..synth import BYTES_PER_MS, audio_chunks, transcript_pieces
from .codec import encode_output

if TYPE_CHECKING:
    from .session import LiveSession


class Timeline:
    """Milliseconds from session start: the furthest of input audio received, output audio
    sent and (pace "realtime" only) wall time. With pace "fast" the clock is audio-driven,
    so tests get the same numbers on any machine."""

    def __init__(self, realtime: bool) -> None:
        self.realtime = realtime
        self.started = time.monotonic()
        self.input_ms = 0
        self.output_ms = 0

    def now(self) -> int:
        wall = int((time.monotonic() - self.started) * 1000) if self.realtime else 0
        return max(self.input_ms, self.output_ms, wall)


@dataclass
class Utterance:
    text: str
    kind: str  # "reply" | "acknowledgement" | "delegation_result" | "commentary"
    at_ms: int


class Speaker:
    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self.queue: asyncio.Queue[Utterance] = asyncio.Queue()
        self.current: Utterance | None = None
        self._cut = asyncio.Event()
        self._floor_free = asyncio.Event()  # cleared while the user is speaking
        self._floor_free.set()
        self._floor_ms = 0  # where the user last stopped: held speech starts no earlier
        self._utterances = 0
        self._last_end_ms = -1  # where the previous utterance's audio ended

    def say(self, text: str, kind: str, at_ms: int) -> None:
        self.queue.put_nowait(Utterance(text, kind, at_ms))

    def user_started(self) -> None:
        """Barge-in: the model yields the utterance it is speaking and holds the rest."""
        self._floor_free.clear()
        if self.current is not None:
            self._cut.set()

    def user_stopped(self, at_ms: int) -> None:
        self._floor_ms = at_ms
        self._floor_free.set()

    def stop(self) -> None:
        """Session over: cut the current utterance, drop the queue."""
        while not self.queue.empty():
            self.queue.get_nowait()
        if self.current is not None:
            self._cut.set()

    async def run(self) -> None:
        while True:
            utterance = await self.queue.get()
            await self._floor_free.wait()
            self.current = utterance
            self._cut.clear()
            try:
                await self._speak(utterance)
            finally:
                self.current = None

    async def _speak(self, utterance: Utterance) -> None:
        session, timeline = self.session, self.session.timeline
        self._utterances += 1
        first = self._utterances == 1
        drop_here = self._utterances == session.faults.close_mid_answer
        chunks = audio_chunks(utterance.text)
        pieces = transcript_pieces(utterance.text, len(chunks))
        start_ms = cursor = max(utterance.at_ms, timeline.output_ms, self._floor_ms)
        # Speech that follows the previous utterance without a gap continues one transcript:
        # its first words are set apart by a space ("…check that. The …", not "that.The").
        gap = "" if first or start_ms > self._last_end_ms else " "
        said: list[str] = []
        for (b64, nbytes), piece in zip(chunks, pieces, strict=True):
            if self._cut.is_set() or session.closing:
                break
            end = cursor + nbytes // BYTES_PER_MS
            if piece:
                said.append(piece)
                delta = piece if piece[:1].isspace() else gap + piece
                gap = ""
                await session.send(
                    session.event(
                        "session.output_transcript.delta", delta=delta, start_ms=cursor, end_ms=end
                    )
                )
            audio, size = self._encode(b64, nbytes)
            # OutputAudioDeltaEvent has no event_id (and no timestamps on the primary socket).
            await session.send({"type": "session.output_audio.delta", "delta": audio}, size)
            cursor = timeline.output_ms = max(timeline.output_ms, end)
            if drop_here:
                await session.close(1011, "simulated failure mid-response")
                return
            await self._pause(
                0 if session.pace == "fast" else nbytes / 48 / 1000 * REALTIME_SPEEDUP
            )
        self._last_end_ms = cursor
        session.record.spoken.append(self._entry(utterance, "".join(said), start_ms, cursor))
        await session.report_usage()

    def _encode(self, b64: str, nbytes: int) -> tuple[str, int]:
        fmt = self.session.fmt
        if fmt.type == "audio/pcm" and fmt.rate == 24000:
            return b64, nbytes
        raw = encode_output(fmt, base64.b64decode(b64))
        return base64.b64encode(raw).decode("ascii"), len(raw)

    async def _pause(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._cut.wait(), seconds)

    def _entry(self, utterance: Utterance, said: str, start: int, end: int) -> dict[str, Any]:
        return {
            "kind": utterance.kind,
            "text": utterance.text,
            "said": said,
            "yielded": said != utterance.text,
            "start_ms": start,
            "end_ms": end,
        }
