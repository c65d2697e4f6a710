"""GPT-Live's answers and user turns, derived from pauses (see ``realtime.upstream.live``)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
