"""Let daphne send the registered close codes RFC 6455 gives servers (1008/1009/1011/1012).

autobahn's ``sendClose`` only accepts 1000 and 3000–4999 (a rule meant for applications
speaking through it), so daphne raises on ``{"type": "websocket.close", "code": 1009}`` and
the client sees 1006 instead of a reason. These codes are standard for a server to send;
``sendCloseFrame`` is autobahn's own lower-level path that writes them.

Checked against daphne 4.2.3 (``daphne.ws_protocol.WebSocketProtocol.serverClose``) and
autobahn 26.10 (``WebSocketServerProtocol.sendCloseFrame``).
"""

from __future__ import annotations

from typing import Any

SERVER_CODES = frozenset({1001, 1008, 1009, 1011, 1012, 1013})
_MARK = "_relay_close_codes"


def install_close_codes() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not served by daphne
        return
    if getattr(WebSocketProtocol, _MARK, False):
        return
    original = WebSocketProtocol.serverClose

    def server_close(self: Any, code: int | None = None) -> None:
        if code in SERVER_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code=code)

    WebSocketProtocol.serverClose = server_close
    setattr(WebSocketProtocol, _MARK, True)
