"""A session's lifecycle: connecting → live → ending → closed."""

from __future__ import annotations

import enum


class State(enum.Enum):
    CONNECTING = "connecting"  # admitted; the upstream is being opened and configured
    LIVE = "live"  # the greeting went out: frames flow both ways
    ENDING = "ending"  # end() or close() was called: the client is being told, tasks stop
    CLOSED = "closed"  # everything released, the registry row closed


OPEN = (State.CONNECTING, State.LIVE)
