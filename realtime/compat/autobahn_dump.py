"""autobahn's per-connection DEBUG dump of its settings, formatted only when it is logged.

``WebSocketProtocol._connectionMade`` calls ``pformat`` on its ~40 settings for a DEBUG line
on every new connection, whether DEBUG is on or not: about 9 % of the relay's CPU during a
connect storm (profiled with 200 clients). The dump is made lazy: the same text, formatted
only if the line is written.

The module's other ``pformat`` calls are a DEBUG line when a client starts a handshake (lazy
is right there too) and ``Timings.__str__``, which must return a real string and is given the
eager ``pformat`` back.

Written against autobahn 26.10 (``autobahn.websocket.protocol`` imports ``pformat`` and calls
it with one argument for log lines). Checked at install: the module still holds
``pprint.pformat`` under that name and ``Timings`` formats with it; the probe opens an
in-memory daphne connection with the lazy dump and formats ``Timings``. Off: the eager dump.
"""

from __future__ import annotations

import pprint
from typing import Any

from realtime.compat.patching import Patch, Replacer, expect, expect_attributes, served_by_daphne


class LazyFormat:
    __slots__ = ("_value",)

    def __init__(self, value: Any) -> None:
        self._value = value

    def __str__(self) -> str:
        return pprint.pformat(self._value)

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def lazy_pformat(value: Any, *args: Any, **kwargs: Any) -> Any:
    if args or kwargs:
        return pprint.pformat(value, *args, **kwargs)
    return LazyFormat(value)


def _timings_text(self: Any) -> str:
    return pprint.pformat(self._timings)


def _check() -> None:
    from autobahn.websocket import protocol

    expect(protocol.pformat is pprint.pformat, "autobahn no longer formats with pformat")
    expect_attributes(protocol.Timings(), ("_timings", "track"), "autobahn Timings", "autobahn")


def _apply(replace: Replacer) -> None:
    from autobahn.websocket import protocol

    replace(protocol, "pformat", lazy_pformat)
    replace(protocol.Timings, "__str__", _timings_text)  # str() must return a str


def _probe() -> None:
    from autobahn.websocket import protocol

    from realtime.compat.probes import MemoryConnection

    MemoryConnection().close()
    timings = protocol.Timings()
    timings.track("probe")
    expect(isinstance(str(timings), str), "autobahn Timings no longer formats as text")


LAZY_CONFIG_LOG = Patch(
    name="autobahn_lazy_config_log",
    packages=("autobahn",),
    targets=("autobahn.websocket.protocol.pformat", "autobahn Timings.__str__"),
    check=_check,
    apply=_apply,
    probe=_probe,
    needed=served_by_daphne,
)
