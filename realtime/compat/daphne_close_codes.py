"""Let daphne send the registered close codes RFC 6455 gives servers (1008/1009/1011/1012).

autobahn's ``sendClose`` only accepts 1000 and 3000–4999 (a rule meant for applications
speaking through it), so daphne raises on ``{"type": "websocket.close", "code": 1009}`` and
the client sees 1006 instead of a reason. These codes are standard for a server to send;
``sendCloseFrame`` is autobahn's own lower-level path that writes them.

Written against daphne 4.2 (``WebSocketProtocol.serverClose(code)``) and autobahn 26.10
(``sendCloseFrame(code, reasonUtf8, isReply)``). Checked at install: both signatures, then a
probe closes an in-memory daphne connection with 1009 and reads the close frame it wrote.
Off (the plain path): daphne's own ``serverClose``; those codes then end in 1006.
"""

from __future__ import annotations

from typing import Any

from realtime.compat.patching import Patch, Replacer, expect, expect_parameters, served_by_daphne

SERVER_CODES = frozenset({1001, 1008, 1009, 1011, 1012, 1013})


def _check() -> None:
    from daphne.ws_protocol import WebSocketProtocol

    # Both are called with keywords (daphne's handle_reply: serverClose(code=...)).
    expect_parameters(
        WebSocketProtocol.serverClose,
        ("self", "code"),
        "daphne WebSocketProtocol.serverClose",
        "daphne",
        by_name=True,
    )
    expect_parameters(
        WebSocketProtocol.sendCloseFrame,
        ("self", "code", "reasonUtf8", "isReply"),
        "autobahn WebSocketProtocol.sendCloseFrame",
        "autobahn",
        by_name=True,
    )


def _apply(replace: Replacer) -> None:
    from daphne.ws_protocol import WebSocketProtocol

    original = WebSocketProtocol.serverClose

    def server_close(self: Any, code: int | None = None) -> None:
        if code in SERVER_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code=code)

    replace(WebSocketProtocol, "serverClose", server_close)


def _probe() -> None:
    from realtime.compat.probes import MemoryConnection

    connection = MemoryConnection()
    try:
        connection.protocol.handle_reply({"type": "websocket.close", "code": 1009})
        expect(connection.written() == b"\x88\x02\x03\xf1", "no close frame with 1009 written")
        connection.protocol.handle_reply({"type": "websocket.close", "code": 4001})
    finally:
        connection.close()


CLOSE_CODES = Patch(
    name="daphne_close_codes",
    packages=("daphne", "autobahn"),
    targets=("daphne.ws_protocol.WebSocketProtocol.serverClose",),
    check=_check,
    apply=_apply,
    probe=_probe,
    needed=served_by_daphne,
)
