"""GPT-Live (``client.live``): OpenAI ``/v1/live/sessions`` and Azure Foundry ``/openai/v1/…``.

GPT-Live is full duplex and manages turns itself: it has no items, no response lifecycle,
no speech or turn events and no truncate. This adapter *derives* what the browser protocol
promises (docs/gpt-live.md has the whole mapping):
- an **answer** is the assistant output between two pauses: the first output delta starts
  it (``response_started``, a synthetic item id for ``audio_start``/``text_delta``), and
  ``ANSWER_GAP_S`` without output ends it (``text_done``, ``audio_done``, ``response_done``);
- the **user's speech** comes from the relay's own energy detector on the client's audio
  (``speech_started``/``speech_stopped``, as soon as the user speaks), with the input
  transcript's first delta as a fallback; the final ``transcription`` is the transcript
  deltas joined, once the user is quiet and the deltas pause for ``USER_GAP_S``;
- a **barge-in** ends the answer on air (the session stops its audio at the client); what the
  user heard is told to the model as silent context (``session.thinking.append``);
- **typed text** is speakable context that asks for a reply (``session.commentary.append``);
- **tools** run through Responses delegation: the delegated backend's function calls (inside
  ``response.event``) run in the relay, their outputs go back with ``response.item.create``,
  then ``response.create`` continues the delegated response.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from realtime.compat.sdk import raw_socket
from realtime.kernel import endings
from realtime.kernel.endings import SessionEnded
from realtime.kernel.events import (
    AudioDelta,
    AudioDone,
    BackendUsage,
    Event,
    InputTranscript,
    InputTranscriptDelta,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    ToolCall,
    ToolTurnEnded,
    UpstreamEnded,
    UpstreamError,
    UpstreamFrames,
    UsageReport,
)
from realtime.upstream import live_session as frames
from realtime.upstream.adapter import Unsupported, UpstreamAdapter
from realtime.upstream.clients import close_connection, enter, websocket_options
from realtime.upstream.realtime import usage_of
from realtime.upstream.speech import SpeechDetector

log = logging.getLogger("realtime.upstream")

ANSWER_GAP_S = 0.8  # no assistant output for this long: the answer is over
USER_GAP_S = 1.5  # quiet, and no user transcript for this long: the utterance is over
TRAILING_WORDS_S = 1.0  # words this soon after a turn ended belong to it, not to new speech
CLOSE_WAIT_S = 2.0  # for session.closed (final usage) after session.close

# session.closed reasons the relay did not ask for → the client's ending.
CLOSED_ENDINGS = {
    "expired": endings.UPSTREAM_SESSION_EXPIRED,
    "content": endings.UPSTREAM_CLOSED.because(
        "the realtime service ended the session (content policy)"
    ),
    "remote_hangup": endings.UPSTREAM_CLOSED,
    "connection_lost": endings.UPSTREAM_CLOSED,
}


@dataclass
class Answer:
    """One derived assistant answer: the output between two pauses."""

    item_id: str
    response_id: str
    last_output: float
    first_ms: int | None = None  # session time of its first transcript delta
    pieces: list[tuple[int, str]] = field(default_factory=list)  # (start_ms, text)
    text: bool = False
    audio: bool = False

    def heard_text(self, heard_ms: int) -> str:
        """The transcript the user heard in its first ``heard_ms`` of audio."""
        if self.first_ms is None:
            return ""
        return "".join(t for start, t in self.pieces if start - self.first_ms < heard_ms)


@dataclass
class Utterance:
    """One user utterance: from the first sound (or transcript delta) to a quiet pause."""

    item_id: str
    last_activity: float  # the latest transcript delta, or when the user went quiet
    parts: list[str] = field(default_factory=list)
    speaking: bool = False  # the relay's detector hears it now
    from_transcript: bool = False  # no sound was detected: speech events follow the words


class LiveAdapter(UpstreamAdapter):
    api = "live"
    answers_block_requests = False  # full duplex: typed text and tool results never wait

    _connection: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        td = self.config.turn_detection
        self._speech = SpeechDetector(
            threshold=td.threshold if td else 0.5,
            silence_ms=td.silence_duration_ms if td else 500,
        )
        self._answer: Answer | None = None
        self._answers: deque[Answer] = deque(maxlen=4)  # recent ones, for truncation
        self._user: Utterance | None = None
        self._ended_at = float("-inf")  # when the last utterance with words was closed
        self._pending: list[Event] = []  # events due now (from the speech detector)
        self._calls: dict[str, list[str]] = {}  # delegation id → its function call ids
        self._seq = 0
        self.session_id = ""

    @property
    def turn_detection(self) -> str:
        return "model"

    # ---- connect ---------------------------------------------------------------------------

    async def open(self) -> None:
        config = self.config
        client = self.clients.client(config)
        manager = client.live.connect(websocket_connection_options=websocket_options(config))
        self._connection = await enter(manager, config)
        raw = raw_socket(self._connection)
        self.send, self.recv, self.write_now = raw.send, raw.recv, raw.write_now
        await self.send(frames.to_json(frames.session_start(config, self.tools.live_tools())))
        async with asyncio.timeout(config.connect_timeout_s):
            while True:
                event = json.loads(await self.recv())
                kind = event.get("type")
                if kind == "session.started":
                    self.session_id = str((event.get("session") or {}).get("id") or "")
                    return
                if kind == "error":
                    err = event.get("error") or {}
                    raise SessionEnded(
                        endings.UPSTREAM_SESSION_REJECTED.because(
                            "the realtime service rejected the session settings: "
                            f"{err.get('message') or err.get('code')}"
                        )
                    )

    # ---- upstream → session -------------------------------------------------------------------

    def translate(self, frame: bytes | str, now: float) -> list[Event]:
        event = json.loads(frame)
        kind = event.get("type")
        out: list[Event] = []
        if kind == "session.output_audio.delta":
            try:
                pcm = base64.b64decode(event.get("delta", ""), validate=True)
            except (binascii.Error, ValueError):
                return out
            answer = self._answer_on_air(now, out)
            answer.audio = True
            out.append(AudioDelta(answer.item_id, 0, pcm))
        elif kind == "session.output_transcript.delta":
            answer = self._answer_on_air(now, out)
            start = int(event.get("start_ms") or 0)
            if answer.first_ms is None:
                answer.first_ms = start
            delta = str(event.get("delta") or "")
            if not answer.text:  # one transcript runs on across answers: an answer's own
                delta = delta.lstrip()  # text starts at its first word
            answer.text = answer.text or bool(delta)
            answer.pieces.append((start, delta))
            if delta:
                out.append(TextDelta(f"{answer.item_id}-0", delta))
        elif kind == "session.input_transcript.delta":
            self._user_words(str(event.get("delta") or ""), now, out)
        elif kind == "session.usage.updated":
            out.append(UsageReport(int((event.get("usage") or {}).get("seconds") or 0)))
        elif kind == "response.event":
            self._backend(event, out)
        elif kind == "session.delegation.created":
            self._delegation(event, out)
        elif kind == "session.closed":
            reason = str(event.get("reason") or "")
            ending = CLOSED_ENDINGS.get(reason)
            if ending is not None:
                out.append(UpstreamEnded(ending, f"session_closed_{reason}"))
        elif kind == "error":
            err = event.get("error") or {}
            code = str(err.get("code") or err.get("type") or "upstream_error")
            message = str(err.get("message") or "the realtime service reported an error")
            out.append(UpstreamError(code, message))
        elif kind == "info":
            log.info("GPT-Live notice %s: %s", event.get("code"), event.get("message"))
        return out

    def deadline(self) -> float | None:
        if self._pending:
            return 0.0  # due now
        due = [
            a + gap
            for a, gap in (
                (self._answer.last_output if self._answer else None, ANSWER_GAP_S),
                (
                    self._user.last_activity if self._user and not self._user.speaking else None,
                    USER_GAP_S,
                ),
            )
            if a is not None
        ]
        return min(due) if due else None

    def tick(self, now: float) -> list[Event]:
        out, self._pending = self._pending, []
        answer = self._answer
        if answer is not None and now - answer.last_output >= ANSWER_GAP_S:
            self._end_answer(out, "completed", None)
        user = self._user
        if user is not None and not user.speaking and now - user.last_activity >= USER_GAP_S:
            self._end_utterance(out, now)
        return out

    def _answer_on_air(self, now: float, out: list[Event]) -> Answer:
        answer = self._answer
        if answer is None:
            # The model answers: the user's turn is over (its transcription comes first, as
            # on the Realtime API), unless the detector still hears them.
            user = self._user
            if user is not None and not user.speaking and user.parts:
                self._end_utterance(out, now)
            self._seq += 1
            answer = Answer(f"live_a{self._seq}", f"live_r{self._seq}", now)
            self._answer = answer
            self._answers.append(answer)
            out.append(ResponseStarted(answer.response_id))
        answer.last_output = now
        return answer

    def _end_answer(self, out: list[Event], status: str, reason: str | None) -> None:
        answer, self._answer = self._answer, None
        if answer is None:
            return
        part = f"{answer.item_id}-0"
        if answer.audio:
            out.append(AudioDone(part))
        if answer.text:
            out.append(TextDone(part))
        out.append(ResponseDone(answer.response_id, status, reason))

    def _end_utterance(self, out: list[Event], now: float) -> None:
        user, self._user = self._user, None
        if user is None:
            return
        if user.from_transcript:
            out.append(SpeechStopped())
        if user.parts:  # sound without words (a cough) is no utterance to transcribe
            out.append(InputTranscript(user.item_id, "".join(user.parts).strip()))
            self._ended_at = now

    def _utterance(self, now: float) -> Utterance:
        user = self._user
        if user is None:
            self._seq += 1
            user = self._user = Utterance(f"live_u{self._seq}", now)
        return user

    def _user_words(self, delta: str, now: float, out: list[Event]) -> None:
        new = self._user is None
        user = self._utterance(now)
        trailing = now - self._ended_at < TRAILING_WORDS_S  # late words of the turn just ended
        if new and not trailing:  # words the detector did not hear (quiet speech): start now
            user.from_transcript = True
            self._speech_started(out)
        user.last_activity = now
        user.parts.append(delta)
        out.append(InputTranscriptDelta(user.item_id, delta))

    def _speech_started(self, out: list[Event]) -> None:
        # The user talks over an answer: it ends here for the client (the session stops its
        # audio); whatever the model says next is a new answer, never dropped as stale.
        if self._answer is not None:
            self._end_answer(out, "cancelled", "turn_detected")
        out.append(SpeechStarted())

    def _backend(self, event: dict[str, Any], out: list[Event]) -> None:
        """A nested Responses event of the delegated backend (``response.event``)."""
        delegation = str(event.get("delegation_id") or "")
        nested = event.get("event") or {}
        kind = nested.get("type")
        if kind == "response.output_item.done":
            item = nested.get("item") or {}
            if item.get("type") == "function_call":
                call_id = str(item.get("call_id"))
                self._calls.setdefault(delegation, []).append(call_id)
                out.append(ToolCall(call_id, str(item.get("name")), item.get("arguments") or "{}"))
        elif kind in ("response.completed", "response.failed", "response.incomplete"):
            response = nested.get("response") or {}
            usage = usage_of(response.get("usage"))
            if usage.total_tokens:
                out.append(BackendUsage(usage))
            if self._calls.pop(delegation, None):
                out.append(ToolTurnEnded(cancelled=kind != "response.completed"))

    def _delegation(self, event: dict[str, Any], out: list[Event]) -> None:
        delegation = event.get("delegation") or {}
        if delegation.get("target") == "client":
            # This relay runs no client-side agent: say so at once, so the model does not
            # wait for a result that will never come.
            content = "No backend is available for that here; tell the user you cannot do it."
            out.append(UpstreamFrames([frames.append("commentary", content, delegation.get("id"))]))

    # ---- session → upstream -------------------------------------------------------------------

    def audio_frame(self, pcm: bytes) -> str:
        change = self._speech.feed(pcm)
        if change is not None:
            self._speech_changed(change, time.monotonic())
            self.wake()
        return (
            '{"type":"session.input_audio.append","audio":"' + base64.b64encode(pcm).decode() + '"}'
        )

    def _speech_changed(self, speaking: bool, now: float) -> None:
        current = self._user
        if speaking and current is not None and not current.speaking and current.parts:
            # Speech again after a pause, its words already in: a new utterance (a barge-in
            # over the answer is the usual case), with a transcription of its own.
            self._end_utterance(self._pending, now)
        user = self._utterance(now)
        if speaking and not user.speaking:
            user.speaking = True
            if not user.from_transcript:
                self._speech_started(self._pending)
        elif not speaking and user.speaking:
            user.speaking = False
            user.last_activity = now  # its words may still be on their way
            if not user.from_transcript:
                self._pending.append(SpeechStopped())

    def user_text(self, text: str) -> list[str]:
        return frames.typed_text(text)

    def request_answer(self) -> list[str]:
        return []  # the model answers on its own; typed text asks for a reply itself

    def cancel_answer(self) -> list[str]:
        return []  # no cancel: the session stops the audio; truncate() tells the model

    def commit_audio(self) -> list[str]:
        raise Unsupported(
            "commit_unavailable", "GPT-Live ends turns itself: there is no manual commit"
        )

    def answer_cut(self, item_id: str) -> None:
        # GPT-Live cannot be stopped: the answer ends here for the client, and whatever the
        # model says next is a new answer (played, not dropped as audio of a cut item).
        if self._answer is not None and self._answer.item_id == item_id:
            self._end_answer(self._pending, "cancelled", "client_cancelled")
            self.wake()

    def truncate(self, item_id: str, content_index: int, heard_ms: int) -> list[str]:
        answer = next((a for a in self._answers if a.item_id == item_id), None)
        return [frames.interrupted(answer.heard_text(heard_ms) if answer else "")]

    def tool_result(self, call_id: str, output: str) -> list[str]:
        return [frames.function_output(call_id, output)]

    def continue_after_tools(self) -> list[str]:
        return [frames.CONTINUE_DELEGATION]

    def system_message(self, text: str) -> list[str]:
        return [frames.append("instructions", text[: frames.APPEND_CHARS])]

    async def close(self) -> list[Event]:
        """``session.close``, then wait briefly for ``session.closed`` and its final usage."""
        connection, self._connection = self._connection, None
        if connection is None:
            return []
        out: list[Event] = []
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self.send('{"type":"session.close"}')
                while True:
                    event = json.loads(await self.recv())
                    if event.get("type") == "session.closed":
                        seconds = (event.get("usage") or {}).get("seconds")
                        if seconds is not None:
                            out.append(UsageReport(int(seconds)))
                        break
        except Exception as exc:  # the socket may already be gone; a bounded goodbye
            log.debug("GPT-Live close: %s", type(exc).__name__)
        await close_connection(connection)
        return out
