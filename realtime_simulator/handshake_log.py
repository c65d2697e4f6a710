"""The simulator's websockets logger, without tracebacks for clients that simply left.

websockets logs a connection that closes before its opening handshake completes as
``opening handshake failed`` at ERROR, with a traceback. For the simulator that is almost
always a relay whose browser left while the upstream connect was still under way (the relay
cancels it): routine, so it goes to DEBUG as one line. Any other handshake failure is still
logged as websockets logs it.
"""

from __future__ import annotations

import logging

log = logging.getLogger("realtime_simulator")


def _peer_left(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, EOFError | ConnectionError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class PeerLeftDuringHandshake(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "opening handshake failed" and record.exc_info:
            if _peer_left(record.exc_info[1]):
                log.debug("simulator: a client left during its opening handshake")
                return False
        return True


# A child of websockets' own logger: its level and handlers are whatever the process set up.
HANDSHAKE_LOG = logging.getLogger("websockets.server.simulator")
HANDSHAKE_LOG.addFilter(PeerLeftDuringHandshake())
