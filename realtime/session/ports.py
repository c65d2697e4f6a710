"""What a session is given, and what it talks through: the seams around the session core.

- ``ClientPort``: the client side, in neutral terms (``client_events``); each edge implements
  it for its clients (the WebSocket consumer: the browser protocol).
- ``Admission``: what the edge's admission decided for this connection (the session's id,
  configuration, tools, user, counters, registry row, record, budget). The WebSocket edge's
  ``Admitted`` is one.
- ``Roster``: the worker's live sessions (the runtime keeps them, to drain them at shutdown).

The session imports nothing of an edge: these are its only contracts with one.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from realtime.guards.budgets import Budget
    from realtime.kernel.config import RelayConfig
    from realtime.kernel.counters import SessionCounters
    from realtime.ops.presence import Presence
    from realtime.records.conversation import Conversation
    from realtime.session.client_events import ClientEvent
    from realtime.tools import Keypad, PhoneCall, ToolRegistry


class ClientPort(Protocol):
    """The client side of a session (the WebSocket consumer implements it)."""

    async def send_event(self, event: ClientEvent) -> None: ...

    async def send_audio(self, pcm: bytes) -> None:
        """Reply audio of the part the last ``AnswerAudioStart`` named, in the session's
        ``audio_format`` (PCM16 24 kHz; μ-law 8 kHz for the phone edge)."""

    async def close(self, code: int) -> None: ...


class Admission(Protocol):
    @property
    def session_id(self) -> uuid.UUID: ...
    @property
    def config(self) -> RelayConfig: ...  # the worker's, with the session policy applied
    @property
    def tools(self) -> ToolRegistry: ...  # the tools this session may use
    @property
    def user(self) -> Any: ...  # the Django user, or None (anonymous)
    @property
    def counters(self) -> SessionCounters: ...
    @property
    def presence(self) -> Presence: ...  # the session's registry row
    @property
    def conversation(self) -> Conversation: ...  # what was said, written with the heartbeat
    @property
    def budget(self) -> Budget | None: ...  # what was left of the user's budgets at connect
    @property
    def edge(self) -> str: ...  # where the client came from: "browser" or "phone" (metrics)
    @property
    def phone(self) -> PhoneCall | None: ...  # a phone call's facts, for its tools
    @property
    def keypad(self) -> Keypad | None: ...  # a phone caller's key presses, for its tools


class Roster(Protocol):
    """The worker's live sessions (``realtime.ops.runtime.Runtime`` is one)."""

    def register(self, session: Any) -> None: ...

    def unregister(self, session: Any) -> None: ...
