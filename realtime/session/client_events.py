"""What a session tells its client, in neutral terms: no wire format, no socket.

The session hands these to its ``ClientPort`` (``send_event``); each edge encodes them for
its client. The WebSocket edge writes the browser protocol of docs/protocol.md
(``realtime.edge.protocol.encode``); another edge (a phone line, say) would speak or drop
them. Reply audio is not an event: it goes as bytes (``send_audio``), after an
``AnswerAudioStart`` that says which answer part the following audio belongs to.

Tool progress is the tools' own ``ToolNotice`` (``realtime.tools``): neutral already.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from realtime.kernel.events import Usage
from realtime.kernel.latency import NONE, Latency
from realtime.tools import ToolNotice

if TYPE_CHECKING:
    from realtime.guards.budgets import Budget

# ---- the session ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    """The upstream is configured: the conversation can begin."""

    greeting: str


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Sent right after ``Connected``: who serves the session (never a key or a URL)."""

    session_id: str
    provider: str
    api: str
    turn_detection: str
    budget: Budget | None = None  # what was left of the user's daily budget at connect
    resume_token: str | None = None  # for /realtime?resume=… after a lost socket (None: off)
    resumed: bool = False  # this connection resumed an earlier one's session


@dataclass(frozen=True, slots=True)
class SessionEnding:
    """The session reaches its maximum length soon."""

    seconds_left: int


@dataclass(frozen=True, slots=True)
class UpstreamRenewed:
    """The relay replaced the upstream session and gave the new one the conversation so far;
    nothing else changes. ``reason``: ``max_age`` or the failure recovered from; ``upstream``:
    the number of the upstream session now serving (2, 3, …)."""

    reason: str
    upstream: int


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """Billed upstream time so far (cumulative)."""

    seconds: int


@dataclass(frozen=True, slots=True)
class Error:
    """Something went wrong. ``fatal``: the session ends (the port's ``close`` follows)."""

    code: str
    message: str
    fatal: bool = False


# ---- the user's turn -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The user started speaking (the client stops playing the answer: barge-in)."""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The user stopped speaking."""


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """The user's words while they are being transcribed."""

    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class Transcript:
    """The user's words, transcribed (the deltas of ``item_id`` add up to ``text``)."""

    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class InputTimeout:
    """The user said nothing for a while after an answer; the model prompts them."""


# ---- the model's answers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerStarted:
    response_id: str


@dataclass(frozen=True, slots=True)
class AnswerAudioStart:
    """The reply audio that follows belongs to this part of an answer, until the next one."""

    item_id: str
    content_index: int


@dataclass(frozen=True, slots=True)
class AnswerAudioDone:
    part_id: str  # "<item_id>-<content_index>"


@dataclass(frozen=True, slots=True)
class AnswerTextDelta:
    part_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class AnswerTextDone:
    part_id: str


@dataclass(frozen=True, slots=True)
class AnswerDone:
    """An answer ended: ``completed``, ``cancelled``, ``failed`` or ``incomplete``."""

    response_id: str
    status: str
    reason: str | None
    usage: Usage
    latency: Latency = NONE  # from the end of the user's turn (realtime.session.latency)


@dataclass(frozen=True, slots=True)
class AnswerTruncated:
    """The model's memory of an interrupted answer was cut at what the user heard."""

    item_id: str
    audio_end_ms: int


ClientEvent = (
    Connected
    | SessionInfo
    | SessionEnding
    | UpstreamRenewed
    | UsageUpdate
    | Error
    | SpeechStarted
    | SpeechStopped
    | TranscriptDelta
    | Transcript
    | InputTimeout
    | AnswerStarted
    | AnswerAudioStart
    | AnswerAudioDone
    | AnswerTextDelta
    | AnswerTextDone
    | AnswerDone
    | AnswerTruncated
    | ToolNotice
)
