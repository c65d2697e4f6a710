"""Frames straight onto the ``openai`` SDK connection's websocket, with the public API as fallback.

The SDK's ``send_raw`` adds a reconnect queue and a lock per message, and ``recv_bytes`` a
log call and reconnect bookkeeping: at 50 audio appends a second per session that is pure
overhead, and the relay never reconnects mid-conversation (the session would be lost
anyway). Both the Realtime and the GPT-Live connection classes keep the websockets
connection in ``_connection`` (checked against openai 3.57 with websockets 15). If a
release renames it, the relay falls back to ``send_raw``/``recv_bytes`` and logs once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("realtime.compat")
_warned = False


@dataclass(frozen=True, slots=True)
class RawSocket:
    send: Callable[[str], Awaitable[None]]
    recv: Callable[[], Awaitable[bytes | str]]
    direct: bool  # False when the public API is used


def raw_socket(connection: Any) -> RawSocket:
    """The fastest safe way to send and receive raw frames on an SDK connection."""
    ws = getattr(connection, "_connection", None)
    send = getattr(ws, "send", None)
    recv = getattr(ws, "recv", None)
    if callable(send) and callable(recv):

        async def recv_raw() -> bytes | str:
            return await recv(decode=False)

        return RawSocket(send=send, recv=recv_raw, direct=True)
    global _warned
    if not _warned:
        _warned = True
        log.warning("openai SDK connection has no raw websocket; using send_raw/recv_bytes")
    return RawSocket(send=connection.send_raw, recv=connection.recv_bytes, direct=False)


def close_code(connection: Any) -> int | None:
    """The websocket close code, when the connection is closed (None if unknown)."""
    ws = getattr(connection, "_connection", None)
    return getattr(ws, "close_code", None)
