"""Keep keys and Entra tokens out of websockets' DEBUG handshake dump.

``websockets.client`` logs each request header at DEBUG ("> Authorization: Bearer …"). A
filter on that logger runs before any handler an operator configures, so the secret never
reaches a log line. Not a patch (it changes nothing of websockets, and a filter that matches
nothing is harmless), so it is always installed: by ``UpstreamClients`` (realtime/upstream),
wherever the relay builds upstream clients. Written against websockets 15 (the logger name
and the "> Name: value" line format); ``tests/compat`` runs a real handshake at DEBUG and
fails if a key reaches a log record.
"""

from __future__ import annotations

import logging
import re

LOGGER = "websockets.client"


class HandshakeHeaderFilter(logging.Filter):
    _SECRET_HEADER = re.compile(r"^(\s*>\s*(?:authorization|api-key)\s*:\s*).+$", re.I | re.S)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._SECRET_HEADER.sub(r"\1[redacted]", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_handshake_redaction() -> None:
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, HandshakeHeaderFilter) for f in logger.filters):
        logger.addFilter(HandshakeHeaderFilter())
