"""The interface every upstream adapter implements (``UpstreamAdapter``) and what an adapter
raises when its API cannot do what the client asked (``Unsupported``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import ClassVar

from websockets.exceptions import ConnectionClosed

from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.endings import Ending
from realtime.kernel.events import Event
from realtime.kernel.history import EMPTY, Snapshot
from realtime.tools import ToolRegistry
from realtime.upstream.clients import UpstreamClients


class Unsupported(Exception):
    """The upstream API has no way to do what the client asked (reported, not fatal)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UpstreamAdapter(ABC):
    api: ClassVar[str]  # what session_info reports as "api"
    # True when the upstream refuses a new request while an answer is in progress (the
    # Realtime API's one active response): the session then waits for the answer to end.
    answers_block_requests: ClassVar[bool] = True

    # Set by open(): the raw frame transport of the connected session.
    send: Callable[[str], Awaitable[None]]
    recv: Callable[[], Awaitable[bytes | str]]
    # A frame written at once if nothing stands in the way (True), else False: use send.
    write_now: Callable[[str], bool] = staticmethod(lambda frame: False)  # type: ignore[assignment]
    # How every frame of ``audio_frame`` starts (the session tells audio from commands).
    audio_prefix: ClassVar[str]
    # The upstream's own id of its session, once open (shown in the admin), if it gives one,
    # and when the upstream says it will end it (Unix seconds): renewal comes before.
    session_id: str = ""
    expires_at: float | None = None

    def __init__(
        self, config: RelayConfig, clients: UpstreamClients, tools: ToolRegistry | None = None
    ) -> None:
        self.config = config
        self.clients = clients
        self.tools = tools if tools is not None else ToolRegistry()
        # Set by the session: makes the reader call tick() now (events due without a frame).
        self.wake: Callable[[], None] = lambda: None

    @abstractmethod
    async def open(self, history: Snapshot = EMPTY) -> None:
        """Connect and configure the upstream session, give it the conversation so far
        (``history``: a renewal or a recovery; each family says how its API takes it);
        raise ``SessionEnded`` on failure."""

    def learn(self, session: object) -> None:
        """The id and expiry of the upstream's session object, as its handshake reports it."""
        if not isinstance(session, dict):
            return
        self.session_id = str(session.get("id") or self.session_id)[:128]
        expires_at = session.get("expires_at")
        if isinstance(expires_at, int | float) and not isinstance(expires_at, bool):
            self.expires_at = float(expires_at) if expires_at > 0 else None

    def follow(self, previous: UpstreamAdapter) -> None:
        """This adapter replaces ``previous`` in the same client session (a renewal): ids it
        makes up must not repeat the previous one's (the client keys answers by them)."""
        return None

    def busy(self) -> bool:
        """Something is in progress that the session's own state does not show (an adapter
        that derives answers and turns: one of them is under way). No renewal then."""
        return False

    @abstractmethod
    def translate(self, frame: bytes | str, now: float) -> list[Event]:
        """One upstream frame → the session's events (may be none)."""

    @property
    def turn_detection(self) -> str:
        """Who ends a user's turn: ``server_vad``/``semantic_vad`` (the service), ``none``
        (the client, with ``commit``) or ``model`` (the model, full duplex)."""
        td = self.config.turn_detection
        return td.type if td is not None else "none"

    def deadline(self) -> float | None:
        """When ``tick`` has events to report without an upstream frame (loop time), if ever."""
        return None

    def tick(self, now: float) -> list[Event]:
        """Events that are due by time alone (e.g. a turn end derived from a pause)."""
        return []

    @abstractmethod
    def audio_frame(self, pcm: bytes) -> str:
        """Client audio (PCM16 24 kHz) as one upstream frame."""

    @abstractmethod
    def user_text(self, text: str) -> list[str]:
        """A typed user message, added to the conversation (no answer requested)."""

    @abstractmethod
    def request_answer(self) -> list[str]:
        """Ask the model to answer now."""

    @abstractmethod
    def cancel_answer(self) -> list[str]:
        """Stop the answer in progress."""

    @abstractmethod
    def commit_audio(self) -> list[str]:
        """End a manual (push-to-talk) turn: commit the buffered audio; raise Unsupported."""

    @abstractmethod
    def tool_result(self, call_id: str, output: str) -> list[str]:
        """A tool call's output, given back to the model (no answer requested)."""

    def continue_after_tools(self) -> list[str]:
        """Ask the model to go on, now that every output of a tool turn was given."""
        return self.request_answer()

    @abstractmethod
    def system_message(self, text: str) -> list[str]:
        """A system message added to the conversation (no answer requested)."""

    def answer_cut(self, item_id: str) -> None:
        """The session cut this answer's audio short (barge-in, interrupt, typed text).
        Adapters that derive answers end it here (events via ``tick``)."""
        return None  # the Realtime API ends its responses itself

    @abstractmethod
    def truncate(self, item_id: str, content_index: int, heard_ms: int) -> list[str]:
        """Tell the model how much of an interrupted answer the user heard (0 = nothing)."""

    @abstractmethod
    async def close(self) -> list[Event]:
        """Close the connection (bounded; never raises); events its closing reported."""

    def closed_ending(self, exc: BaseException) -> Ending | None:
        """The ending for a transport error from ``recv``/``send`` (None: not a close)."""
        if isinstance(exc, ConnectionClosed):
            code = exc.rcvd.code if exc.rcvd else None
            return endings.UPSTREAM_CLOSED.because(
                f"the realtime service closed the session (code {code})"
            )
        return None
