"""GPT-Live's answers and user turns, derived from pauses (``realtime.upstream.live`` has the
whole mapping; docs/gpt-live.md too).

GPT-Live has no items, no response lifecycle and no speech events: an **answer** is the
assistant output between two pauses (``ANSWER_GAP_S`` without output ends it); a **user
utterance** runs from the first sound the relay's detector hears (or the first transcript
delta) to a quiet pause (``USER_GAP_S`` without sound or words). ``LiveTurns`` does that
derivation alone, as a pure object the adapter feeds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from realtime.kernel.events import (
    AudioDelta,
    AudioDone,
    Event,
    InputTranscript,
    InputTranscriptDelta,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
)

ANSWER_GAP_S = 0.8  # no assistant output for this long: the answer is over
USER_GAP_S = 1.5  # quiet, and no user transcript for this long: the utterance is over
TRAILING_WORDS_S = 1.0  # words this soon after a turn ended belong to it, not to new speech


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


class LiveTurns:
    """Answers and user turns derived from what GPT-Live sends and what the relay hears.

    Pure: no socket, no clock of its own (every call gets ``now``, in one monotonic clock),
    no JSON. Each method returns the neutral events due now; events caused by the client's
    own audio (the relay's speech detector) or by the session cutting an answer are kept
    until the next ``tick`` (``deadline`` is then 0: due now).
    """

    def __init__(self) -> None:
        self._answer: Answer | None = None  # the answer on air
        self._answers: deque[Answer] = deque(maxlen=4)  # recent ones, for truncation
        self._user: Utterance | None = None
        self._ended_at = float("-inf")  # when the last utterance with words was closed
        self._pending: list[Event] = []  # events due now (speech detector, a cut answer)
        self.seq = 0  # numbers the ids made up: live_a<n>, live_r<n>, live_u<n>

    @property
    def busy(self) -> bool:
        """An answer or a user utterance is under way (no renewal now)."""
        return self._answer is not None or self._user is not None

    # ---- what GPT-Live sends -----------------------------------------------------------------

    def output_audio(self, pcm: bytes, now: float) -> list[Event]:
        out: list[Event] = []
        answer = self._answer_on_air(now, out)
        answer.audio = True
        out.append(AudioDelta(answer.item_id, 0, pcm))
        return out

    def output_transcript(self, delta: str, start_ms: int, now: float) -> list[Event]:
        out: list[Event] = []
        answer = self._answer_on_air(now, out)
        if answer.first_ms is None:
            answer.first_ms = start_ms
        if not answer.text:  # one transcript runs on across answers: an answer's own
            delta = delta.lstrip()  # text starts at its first word
        answer.text = answer.text or bool(delta)
        answer.pieces.append((start_ms, delta))
        if delta:
            out.append(TextDelta(f"{answer.item_id}-0", delta))
        return out

    def input_transcript(self, delta: str, now: float) -> list[Event]:
        """The user's words (GPT-Live's transcript of the input)."""
        out: list[Event] = []
        new = self._user is None
        user = self._utterance(now)
        trailing = now - self._ended_at < TRAILING_WORDS_S  # late words of the turn just ended
        if new and not trailing:  # words the detector did not hear (quiet speech): start now
            user.from_transcript = True
            self._speech_started(out)
        user.last_activity = now
        user.parts.append(delta)
        out.append(InputTranscriptDelta(user.item_id, delta))
        return out

    # ---- what the relay hears and does -------------------------------------------------------

    def speech_changed(self, speaking: bool, now: float) -> None:
        """The relay's detector heard the user start or stop speaking (events due now)."""
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

    def answer_cut(self, item_id: str) -> bool:
        """The session stopped this answer's audio at the client (GPT-Live cannot be
        stopped): the answer ends here, and whatever the model says next is a new answer.
        True when that ended the answer on air (its end is due now)."""
        if self._answer is not None and self._answer.item_id == item_id:
            self._end_answer(self._pending, "cancelled", "client_cancelled")
            return True
        return False

    def heard_text(self, item_id: str, heard_ms: int) -> str:
        """What the user heard of a recent answer, cut after ``heard_ms`` of its audio."""
        answer = next((a for a in self._answers if a.item_id == item_id), None)
        return answer.heard_text(heard_ms) if answer else ""

    # ---- time ----------------------------------------------------------------------------------

    def deadline(self) -> float | None:
        """When ``tick`` has events to give (0: now), if ever without more input."""
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
        """The events due by ``now``: those kept, and the ends of answers and utterances
        after their pause."""
        out, self._pending = self._pending, []
        answer = self._answer
        if answer is not None and now - answer.last_output >= ANSWER_GAP_S:
            self._end_answer(out, "completed", None)
        user = self._user
        if user is not None and not user.speaking and now - user.last_activity >= USER_GAP_S:
            self._end_utterance(out, now)
        return out

    # ---- the derivation ------------------------------------------------------------------------

    def _answer_on_air(self, now: float, out: list[Event]) -> Answer:
        answer = self._answer
        if answer is None:
            # The model answers: the user's turn is over (its transcription comes first, as
            # on the Realtime API), unless the detector still hears them.
            user = self._user
            if user is not None and not user.speaking and user.parts:
                self._end_utterance(out, now)
            self.seq += 1
            answer = Answer(f"live_a{self.seq}", f"live_r{self.seq}", now)
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
            self.seq += 1
            user = self._user = Utterance(f"live_u{self.seq}", now)
        return user

    def _speech_started(self, out: list[Event]) -> None:
        # The user talks over an answer: it ends here for the client (the session stops its
        # audio); whatever the model says next is a new answer, never dropped as stale.
        if self._answer is not None:
            self._end_answer(out, "cancelled", "turn_detected")
        out.append(SpeechStarted())
