"""Frames straight onto the ``openai`` SDK connection's websocket, with the public API as fallback.

The SDK's ``send_raw`` adds a reconnect queue and a lock per message, and ``recv_bytes`` a
log call and reconnect bookkeeping: at 50 audio appends a second per session that is pure
overhead, and the relay never reconnects mid-conversation (the session would be lost
anyway). Both the Realtime and the GPT-Live connection classes keep the websockets
connection in ``_connection`` (written against openai 3.57 with websockets 15). Decided per
connection (patch ``openai_raw_socket``): if a release renames it, the relay falls back to
``send_raw``/``recv_bytes``, logs one warning naming the openai version and sets
``relay_compat_patch_active{patch="openai_raw_socket"}`` to 0.

Sending a text frame on websockets' ``Connection.send`` enters an async context manager
(``send_context``) that checks the state before and after and then waits for the write
buffer to drain. When the connection is open, no fragmented message is being sent and
the transport is not paused, the frame is written the same way without it (the
protocol's ``send_text``, then ``send_data``); in every other case, ``send`` itself runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from realtime.compat import patching
from realtime.compat.patching import Mismatch, Patch

RAW_SOCKET = Patch(
    name="openai_raw_socket",
    packages=("openai", "websockets"),
    targets=("the openai SDK connection's _connection (a websockets connection)",),
)


@dataclass(frozen=True, slots=True)
class RawSocket:
    send: Callable[[str], Awaitable[None]]
    recv: Callable[[], Awaitable[bytes | str]]
    direct: bool  # False when the public API is used
    # Writes a text frame at once and returns True when nothing stands in the way (see
    # above); False: use ``send``. Never blocks.
    write_now: Callable[[str], bool] = lambda frame: False


def raw_socket(connection: Any) -> RawSocket:
    """The fastest safe way to send and receive raw frames on an SDK connection."""
    ws = getattr(connection, "_connection", None)
    send = getattr(ws, "send", None)
    recv = getattr(ws, "recv", None)
    if callable(send) and callable(recv):

        async def recv_raw() -> bytes | str:
            return await recv(decode=False)

        if not patching.active(RAW_SOCKET.name):
            patching.report(RAW_SOCKET, True)
        quick = _quick_send(ws)
        if quick is None:
            return RawSocket(send=send, recv=recv_raw, direct=True)
        write_now, send_quickly = quick
        return RawSocket(send=send_quickly, recv=recv_raw, direct=True, write_now=write_now)
    patching.report(
        RAW_SOCKET,
        False,
        Mismatch(f"{type(connection).__name__} has no websocket in _connection", "openai"),
    )
    return RawSocket(send=connection.send_raw, recv=connection.recv_bytes, direct=False)


def _quick_send(
    ws: Any,
) -> tuple[Callable[[str], bool], Callable[[str], Awaitable[None]]] | None:
    """``write_now`` and ``send`` for text without ``send_context`` while nothing needs it."""
    try:
        from websockets.protocol import OPEN
    except ImportError:
        return None
    protocol = getattr(ws, "protocol", None)
    needed = ("fragmented_send_waiter", "paused", "send_data", "transport", "send")
    if protocol is None or not all(hasattr(ws, n) for n in needed):
        return None
    if not hasattr(protocol, "send_text") or not hasattr(protocol, "state"):
        return None
    slow, send_text, send_data = ws.send, protocol.send_text, ws.send_data
    transport = ws.transport

    def write_now(message: str) -> bool:
        if (
            protocol.state is OPEN
            and ws.fragmented_send_waiter is None
            and not ws.paused
            and not transport.is_closing()
        ):
            send_text(message.encode())
            send_data()
            return True
        return False

    async def send(message: str) -> None:
        if not write_now(message):
            await slow(message)

    return write_now, send


def close_code(connection: Any) -> int | None:
    """The websocket close code, when the connection is closed (None if unknown)."""
    ws = getattr(connection, "_connection", None)
    return getattr(ws, "close_code", None)
