"""How a session ends: one table of endings, used by every path and mirrored in docs/protocol.md.

A fatal ending is announced with an ``error`` message whose ``code`` is the ending's code,
then the close frame carries its close code; the registry row records the code as the close
reason. ``tests/relay/test_endings.py`` checks this table against the protocol document.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum


class Close(IntEnum):
    """WebSocket close codes (RFC 6455 registered ones, and 4000–4999 for the application)."""

    NORMAL = 1000
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    RESTART = 1012
    TERMINATED = 4000
    LIMIT = 4003
    SESSION_TIMEOUT = 4004
    IDLE_TIMEOUT = 4005
    CONNECT_RATE = 4006
    BUDGET = 4007
    UPSTREAM_UNAVAILABLE = 4010
    UPSTREAM_AUTH = 4011
    UPSTREAM_CLOSED = 4012
    UPSTREAM_STALLED = 4013
    UPSTREAM_EXPIRED = 4014
    RESUMED_ELSEWHERE = 4015


@dataclass(frozen=True, slots=True)
class Ending:
    code: str
    close_code: int
    message: str

    def because(self, message: str) -> Ending:
        """The same ending with a message that says more (sizes, limits, upstream reasons)."""
        return dataclasses.replace(self, message=message)


class SessionEnded(Exception):
    """Raised inside a session's tasks to end it with this ending. ``upstream_code``: the
    upstream's own reason, when it ended the session (e.g. ``session_closed_content``)."""

    def __init__(self, ending: Ending, upstream_code: str = "") -> None:
        super().__init__(ending.message)
        self.ending = ending
        self.upstream_code = upstream_code


def _ending(code: str, close: Close, message: str) -> Ending:
    return Ending(code, int(close), message)  # plain ints: daphne refuses IntEnum codes


# Endings a client or the relay starts without an error (no error message is sent).
CLIENT_CLOSED = _ending("client_closed", Close.NORMAL, "The client closed the session.")
# The client's socket went away without a clean close: the session waits for a resume
# (realtime/session/continuity.py); its row says ``detached``, then how it ended.
CLIENT_DETACHED = _ending(
    "client_detached", Close.NORMAL, "The client's connection was lost; waiting for a resume."
)
# The non-fatal error a client gets when its resume token could not resume its session.
RESUME_UNAVAILABLE = "resume_unavailable"

# Refusals at connect.
AUTH_REQUIRED = _ending(
    "auth_required",
    Close.POLICY,
    "Log in to use this relay. Programs can connect with a ticket from POST /api/realtime/ticket.",
)
TICKET_INVALID = _ending(
    "ticket_invalid",
    Close.POLICY,
    "The connect ticket is invalid, expired or already used; get a new one.",
)
POLICY_REFUSED = _ending(
    "policy_refused", Close.POLICY, "The session policy does not allow this session."
)
ORIGIN_NOT_ALLOWED = _ending(
    "origin_not_allowed", Close.POLICY, "This origin may not use this relay."
)
TOO_MANY_SESSIONS = _ending(
    "too_many_sessions", Close.LIMIT, "Too many sessions are open; try again later."
)
TOO_MANY_CONNECTS = _ending(
    "too_many_connects",
    Close.CONNECT_RATE,
    "Too many connects in the last minute; wait before reconnecting.",
)
BUDGET_EXHAUSTED = _ending(
    "budget_exhausted",
    Close.BUDGET,
    "Your daily budget is used up; it resets at midnight UTC.",
)
REGISTRY_UNAVAILABLE = _ending(
    "registry_unavailable",
    Close.INTERNAL,
    "The relay cannot register sessions right now; try again shortly.",
)
SERVER_RESTARTING = _ending(
    "server_restarting",
    Close.RESTART,
    "This relay worker is restarting; reconnect to continue.",
)

# Limits and the server.
FRAME_TOO_LARGE = _ending("frame_too_large", Close.TOO_BIG, "A frame exceeded the size limit.")
SESSION_TIMEOUT = _ending(
    "session_timeout", Close.SESSION_TIMEOUT, "The session reached its maximum length."
)
IDLE_TIMEOUT = _ending(
    "idle_timeout", Close.IDLE_TIMEOUT, "No audio or message from the client; session closed."
)
TERMINATED = _ending("terminated", Close.TERMINATED, "An administrator ended this session.")
SESSION_RESUMED_ELSEWHERE = _ending(
    "session_resumed_elsewhere",
    Close.RESUMED_ELSEWHERE,
    "This session was resumed on another connection.",
)
INTERNAL_ERROR = _ending("internal_error", Close.INTERNAL, "the relay hit an internal error")

# The upstream.
UPSTREAM_UNAVAILABLE = _ending(
    "upstream_unavailable",
    Close.UPSTREAM_UNAVAILABLE,
    "the realtime service could not be reached",
)
UPSTREAM_AUTH_FAILED = _ending(
    "upstream_auth_failed",
    Close.UPSTREAM_AUTH,
    "the realtime service rejected the relay's credentials",
)
UPSTREAM_SESSION_REJECTED = _ending(
    "upstream_session_rejected",
    Close.UPSTREAM_CLOSED,
    "the realtime service rejected the session settings",
)
UPSTREAM_CLOSED = _ending(
    "upstream_closed", Close.UPSTREAM_CLOSED, "the realtime service closed the session"
)
UPSTREAM_STALLED = _ending(
    "upstream_stalled", Close.UPSTREAM_STALLED, "the realtime service stopped answering"
)
UPSTREAM_SESSION_EXPIRED = _ending(
    "upstream_session_expired",
    Close.UPSTREAM_EXPIRED,
    "the realtime session reached the service's time limit",
)

FATAL: dict[str, Ending] = {
    ending.code: ending
    for ending in (
        AUTH_REQUIRED,
        TICKET_INVALID,
        POLICY_REFUSED,
        ORIGIN_NOT_ALLOWED,
        TOO_MANY_SESSIONS,
        TOO_MANY_CONNECTS,
        BUDGET_EXHAUSTED,
        REGISTRY_UNAVAILABLE,
        SERVER_RESTARTING,
        FRAME_TOO_LARGE,
        SESSION_TIMEOUT,
        IDLE_TIMEOUT,
        TERMINATED,
        SESSION_RESUMED_ELSEWHERE,
        INTERNAL_ERROR,
        UPSTREAM_UNAVAILABLE,
        UPSTREAM_AUTH_FAILED,
        UPSTREAM_SESSION_REJECTED,
        UPSTREAM_CLOSED,
        UPSTREAM_STALLED,
        UPSTREAM_SESSION_EXPIRED,
    )
}
"""Every ending a client is told about, by code (the error table of docs/protocol.md)."""
