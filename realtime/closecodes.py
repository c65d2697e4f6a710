"""WebSocket close codes the relay uses: one table, mirrored in docs/protocol.md.

A fatal error is always announced first with an ``error`` message whose ``code`` is the
string next to the number here, then the close frame carries the number.
"""

from __future__ import annotations

from enum import IntEnum


class Close(IntEnum):
    NORMAL = 1000  # the client or the relay ended the session normally
    POLICY = 1008  # authentication required / origin not allowed / bad ticket
    TOO_BIG = 1009  # a frame larger than RELAY_MAX_TEXT_BYTES / RELAY_MAX_BINARY_BYTES
    INTERNAL = 1011  # an unexpected error inside the relay
    RESTART = 1012  # the worker is shutting down (drain); reconnect
    TERMINATED = 4000  # an administrator ended the session
    LIMIT = 4003  # too many sessions (per user or in total)
    SESSION_TIMEOUT = 4004  # the session reached RELAY_MAX_SESSION_SECONDS
    IDLE_TIMEOUT = 4005  # no client activity for RELAY_IDLE_TIMEOUT_SECONDS
    UPSTREAM_UNAVAILABLE = 4010  # the realtime service could not be reached at connect
    UPSTREAM_AUTH = 4011  # the realtime service rejected the relay's credentials
    UPSTREAM_CLOSED = 4012  # the realtime service closed the session mid-way
    UPSTREAM_STALLED = 4013  # the realtime service stopped answering
    UPSTREAM_EXPIRED = 4014  # the realtime session reached the service's time cap


UPSTREAM_CONNECT_CLOSE = {
    "upstream_auth_failed": Close.UPSTREAM_AUTH,
    "upstream_unavailable": Close.UPSTREAM_UNAVAILABLE,
}
