"""What a client asks of its session, whatever the edge it came through: the commands an edge
parses from client frames (the browser protocol's in ``realtime.edge.protocol``) and the
session carries out, and the error a parser raises for input it cannot accept."""

from __future__ import annotations

from dataclasses import dataclass


class ClientProtocolError(Exception):
    """Bad client input: reported to the client as a non-fatal error message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class UserMessage:
    text: str


@dataclass(frozen=True, slots=True)
class Playback:
    """The client's exact figure of how much of an assistant audio item it played."""

    item_id: str
    played_ms: int


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Stop the current answer; optionally with the client's exact playback figure."""

    playback: Playback | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    """End a spoken turn (manual turns): commit the buffered audio and ask for an answer."""


ClientCommand = UserMessage | Playback | Interrupt | Commit
