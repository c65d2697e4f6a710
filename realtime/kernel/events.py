"""The session's neutral vocabulary: what an upstream adapter reports, whatever its API.

An adapter (``realtime/upstream/``) turns each upstream event into zero or more of these;
``RelaySession`` (``realtime/session/core.py``) decides what each means for the client, the
counters and barge-in. Nothing here knows a wire format.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from realtime.kernel.endings import Ending


@dataclass(slots=True)
class Usage:
    """Token usage of one answer (Realtime API ``response.done``)."""

    input_tokens: int = 0
    output_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    cached_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The user started speaking (a barge-in if an answer is playing)."""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The user stopped speaking; an answer usually follows."""


@dataclass(frozen=True, slots=True)
class InputTranscriptDelta:
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """The final transcript of one user utterance."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class InputTranscriptFailed:
    message: str


@dataclass(frozen=True, slots=True)
class InputTimeout:
    """The user said nothing for the configured idle time; the model prompts them."""


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    response_id: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    part_id: str  # "<item_id>-<content_index>"
    delta: str


@dataclass(frozen=True, slots=True)
class TextDone:
    part_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    item_id: str
    content_index: int
    pcm: bytes


@dataclass(frozen=True, slots=True)
class AudioDone:
    part_id: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: str
    status: str | None
    reason: str | None
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True, slots=True)
class Truncated:
    """The upstream confirmed that an interrupted answer was cut at what the user heard."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks the relay to run one of its tools (arguments: JSON text)."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolTurnEnded:
    """The model has asked for every call of this turn (GPT-Live: the delegated response
    finished); their outputs go back once they are done — unless the turn was cancelled."""

    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Cumulative billed session time the upstream reports (GPT-Live bills by duration)."""

    seconds: int


@dataclass(frozen=True, slots=True)
class BackendUsage:
    """Tokens a backend model used on the session's behalf (GPT-Live's delegated responses)."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class UpstreamFrames:
    """Frames the adapter itself must send upstream, in order (e.g. declining a request)."""

    frames: list[str]


@dataclass(frozen=True, slots=True)
class UpstreamError:
    """A non-fatal upstream error: reported to the client, the session goes on."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class UpstreamEnded:
    """The upstream ended the session (expiry, a close it announced)."""

    ending: Ending
    code: str = ""  # the upstream's own code, for the error counter


Event = (
    SpeechStarted
    | SpeechStopped
    | InputTranscriptDelta
    | InputTranscript
    | InputTranscriptFailed
    | InputTimeout
    | ResponseStarted
    | TextDelta
    | TextDone
    | AudioDelta
    | AudioDone
    | ResponseDone
    | Truncated
    | ToolCall
    | ToolTurnEnded
    | UsageReport
    | BackendUsage
    | UpstreamFrames
    | UpstreamError
    | UpstreamEnded
)
