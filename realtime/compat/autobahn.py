"""autobahn's per-connection DEBUG dump of its settings, formatted only when it is logged.

``WebSocketProtocol._connectionMade`` calls ``pformat`` on its ~40 settings for a DEBUG line
on every new connection, whether DEBUG is on or not: about 9 % of the relay's CPU during a
connect storm (profiled with 200 clients). The dump is made lazy: the same text, formatted
only if the line is written.

The module's other ``pformat`` calls are a DEBUG line when a client starts a handshake (lazy
is right there too) and ``Timings.__str__``, which must return a real string and is given the
eager ``pformat`` back.

Checked against autobahn 26.10 (``autobahn.websocket.protocol`` imports ``pformat`` and uses
it in ``_connectionMade``, ``startHandshake`` and ``Timings.__str__``); ``tests/compat`` fails
when that changes.
"""

from __future__ import annotations

from pprint import pformat
from typing import Any


class LazyFormat:
    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __str__(self) -> str:
        return pformat(self._value)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def install_lazy_config_log() -> None:
    try:
        from autobahn.websocket import protocol
    except ImportError:
        return
    if getattr(protocol.pformat, "_relay_lazy", False):
        return

    def lazy_pformat(value: Any, *args: Any, **kwargs: Any) -> Any:
        return LazyFormat(value) if not args and not kwargs else pformat(value, *args, **kwargs)

    def timings_text(self: Any) -> str:
        return pformat(self._timings)

    lazy_pformat._relay_lazy = True  # type: ignore[attr-defined]
    protocol.pformat = lazy_pformat
    protocol.Timings.__str__ = timings_text  # str() must return a str
