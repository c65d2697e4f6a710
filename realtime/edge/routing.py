"""WebSocket routes, and the refusal of every other path.

Channels' ``URLRouter`` raises on a path it does not know: daphne answers 500 and logs an
ERROR with a traceback, for anyone who asks (a log flood). ``refuse_unknown_paths`` sits in
front of the whole WebSocket stack (before authentication, so nothing touches the database or
redeems a ticket for such a path): the handshake is refused (HTTP 403, a close before accept)
and one INFO line says which path was asked for.
"""

from __future__ import annotations

import logging
from typing import Any

from django.urls import re_path

from realtime.edge.consumer import RealtimeConsumer
from realtime.edge.phone import PhoneConsumer

log = logging.getLogger("realtime.edge.routing")

websocket_urlpatterns = [
    re_path(r"^realtime/?$", RealtimeConsumer.as_asgi()),
    re_path(r"^twilio/media/?$", PhoneConsumer.as_asgi()),  # the phone edge (docs/phone.md)
]

LOGGED_PATH_CHARS = 200  # a path in the log is cut here (control characters are escaped)


def known_path(scope: dict[str, Any]) -> bool:
    """Would ``URLRouter(websocket_urlpatterns)`` route this scope? (Same path handling.)"""
    path = scope.get("path") or ""
    root_path = scope.get("root_path") or ""
    if root_path:
        if not path.startswith(root_path):
            return False
        path = path[len(root_path) :]
    path = path.lstrip("/")
    return any(route.pattern.match(path) for route in websocket_urlpatterns)


async def refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Refuse the handshake: a close before accept is HTTP 403 under daphne."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    path = str(scope.get("path") or "")
    shown = path if len(path) <= LOGGED_PATH_CHARS else path[:LOGGED_PATH_CHARS] + "…"
    log.info("websocket to unknown path %s refused (403)", shown)
    await send({"type": "websocket.close"})


class RefuseUnknownPaths:
    """ASGI middleware: WebSocket scopes for paths no route serves are refused, not routed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not known_path(scope):
            return await refuse(scope, receive, send)
        return await self.inner(scope, receive, send)
