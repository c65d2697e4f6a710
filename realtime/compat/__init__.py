"""The one home of the relay's reaches into framework and SDK internals.

Each module names what it patches or reaches into, why, and the versions it was checked
against; ``tests/compat/`` fails loudly (with the module's name) when the patched thing
disappears or changes shape, so an upgrade cannot break the relay silently.

- ``daphne``: let daphne send the RFC 6455 server close codes 1008/1009/1011/1012
  (daphne 4.2.3, autobahn 26.10);
- ``consumer``: a Channels consumer base without the per-message task and thread hop
  (channels 4.3.2);
- ``sdk``: frames straight onto the SDK connection's websocket, the public API as fallback
  (openai 3.57, websockets 15);
- ``cancellation``: honour a cancellation an await swallowed (CPython 3.11 ``wait_for``;
  asgiref 3.13 checked);
- ``daphne_guards``: oversized WebSocket messages end in ``frame_too_large`` + 1009 without
  being buffered, and HTTP request deadlines against slow and silent clients (daphne 4.2.3,
  autobahn 26.10, Twisted 26.10);
- ``websockets``: redact keys from websockets' DEBUG handshake dump (websockets 15);
- ``daphne_fastpath``: audio frames in, replies out and socket writes without the
  per-message ASGI and Twisted buffering layers (daphne 4.2.3, autobahn 26.10, Twisted 26.10);
- ``masks``: upstream frame masks from a buffered CSPRNG, not a system call per frame
  (websockets 15);
- ``autobahn``: autobahn's per-connection DEBUG dump of its settings formatted only when
  DEBUG logging is on (autobahn 26.10);
- ``redis_layer``: the channels-redis layer's pools with timeouts and a cap, and its blocking
  receive shorter than the read timeout (channels-redis 4.3.0, redis 7.4).
"""

from __future__ import annotations


def install() -> None:
    """Apply the process-wide patches (idempotent). Called when the ASGI application is built."""
    from realtime.compat import autobahn, daphne, daphne_fastpath, daphne_guards, masks, websockets

    daphne.install_close_codes()
    daphne_guards.install_frame_guard()
    websockets.install_handshake_redaction()
    masks.install_buffered_masks()
    daphne_fastpath.install_eager_writes()
    autobahn.install_lazy_config_log()
