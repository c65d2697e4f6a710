"""What ``manage.py serve`` and the drain ask of daphne's command line and server, and of
Twisted's listening ports.

- ``daphne_cli_application``: ``serve`` runs daphne's own command line (every daphne flag
  keeps working) but with the application it built (with its runtime: e.g. pointed at the
  embedded simulator) and with a server class of its own — ``CommandLineInterface``'s
  ``load_asgi_app`` and ``server_class``. Off: daphne imports ``relay_site.asgi:application``
  and builds it from the environment (``serve`` exports what it decided there), with
  daphne's own server.
- ``daphne_drain_hooks``: the server class tells the drain which sockets it listens on
  (``Server.listen_success``) and holds daphne's cancel-every-application step
  (``Server.kill_all_applications``, run as shutdown begins) until the drain has answered
  every connection. Off: daphne's own server; at shutdown daphne cancels handshakes in
  flight (those clients see a dropped connection) and the listening sockets close when the
  reactor stops.
- ``daphne_connection_table``: the drain counts the connections daphne still serves
  (``Server.connections``: protocol → details, ``"disconnected"`` once gone). Probed on a
  real ``Server`` object. Off: the drain waits its whole settle time.
- ``twisted_accept_before_close``: closing a listening socket resets the connections the
  kernel queued on it, whose clients saw their connect succeed. Twisted closes the socket
  one loop turn after ``stopListening`` (``Port.connectionLost``, scheduled through the
  reactor); the drain accepts what is queued right before (the port's ``doRead``, as when
  it is readable), in the same turn as the close. Probed on a ``tcp.Port`` with a fake
  clock. Off: the socket just closes (queued connections are reset).

Written against daphne 4.2 and Twisted 26.10.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.compat.patching import (
    Patch,
    active,
    expect,
    expect_attributes,
    expect_parameters,
    install,
)

APPLICATION_PATH = "relay_site.asgi:application"


# ---- daphne_cli_application -------------------------------------------------------------------


def _check_cli() -> None:
    from daphne.cli import CommandLineInterface
    from daphne.server import Server

    server_class = getattr(CommandLineInterface, "server_class", None)
    expect(
        isinstance(server_class, type) and issubclass(server_class, Server),
        "daphne's CommandLineInterface no longer builds its server from server_class",
        "daphne",
    )
    expect_parameters(
        CommandLineInterface.load_asgi_app,
        ("self", "asgi_app_path"),
        "daphne CommandLineInterface.load_asgi_app",
        "daphne",
    )
    expect_parameters(CommandLineInterface.run, ("self", "args"), "CommandLineInterface.run")


CLI_APPLICATION = Patch(
    name="daphne_cli_application",
    packages=("daphne",),
    targets=("daphne CommandLineInterface.load_asgi_app", "CommandLineInterface.server_class"),
    check=_check_cli,
)


# ---- daphne_drain_hooks -----------------------------------------------------------------------


def _check_drain_hooks() -> None:
    from daphne.server import Server

    expect_parameters(Server.listen_success, ("self", "port"), "daphne Server.listen_success")
    expect_parameters(
        Server.kill_all_applications, ("self",), "daphne Server.kill_all_applications"
    )


DRAIN_HOOKS = Patch(
    name="daphne_drain_hooks",
    packages=("daphne",),
    targets=("daphne Server.listen_success", "daphne Server.kill_all_applications"),
    check=_check_drain_hooks,
)


def server_class(
    on_listen: Callable[[Any, Any], None], until_drained: Callable[[], Awaitable[None]]
) -> type:
    """daphne's ``Server`` telling ``on_listen(server, port)`` of each listening port and
    cancelling the applications only once ``until_drained()`` returns."""
    from daphne.server import Server
    from twisted.internet import defer

    class RelayServer(Server):
        def listen_success(self, port: Any) -> None:
            super().listen_success(port)
            on_listen(self, port)

        def kill_all_applications(self) -> Any:
            """daphne cancels every application as shutdown begins, handshakes in flight too
            (their clients saw a dropped connection): first let the drain answer them."""

            async def after_drain() -> None:
                await until_drained()
                killed = super(RelayServer, self).kill_all_applications()
                if isinstance(killed, defer.Deferred):
                    await killed.asFuture(asyncio.get_running_loop())

            return defer.Deferred.fromFuture(asyncio.ensure_future(after_drain()))

    return RelayServer


def run(
    argv: list[str],
    build: Callable[[], Any],
    *,
    before_run: Callable[[], None],
    on_listen: Callable[[Any, Any], None],
    until_drained: Callable[[], Awaitable[None]],
) -> None:
    """daphne's command line with ``argv``, serving ``build()`` (plain paths as above)."""
    from daphne.cli import CommandLineInterface

    install(ACCEPT_BEFORE_CLOSE)
    install(CONNECTION_TABLE)
    if install(CLI_APPLICATION):
        application = build()
        server = server_class(on_listen, until_drained) if install(DRAIN_HOOKS) else None

        class RelayDaphne(CommandLineInterface):
            """daphne's command line, serving the application built here instead of
            importing one by path."""

            if server is not None:
                server_class = server

            def load_asgi_app(self, asgi_app_path: str) -> Any:
                return application

        cli: Any = RelayDaphne()
    else:
        cli = CommandLineInterface()  # imports APPLICATION_PATH: built from the environment
    before_run()
    cli.run([*argv, APPLICATION_PATH])


# ---- daphne_connection_table ------------------------------------------------------------------


def _probe_connection_table() -> None:
    from daphne.server import Server

    server = Server(application=None, endpoints=["tcp:port=0"], signal_handlers=False)
    server.connections = {}  # as Server.run starts it
    protocol = object()
    server.protocol_connected(protocol)
    expect(open_connections(server, checked=False) == 1, "daphne lists connections otherwise")
    server.protocol_disconnected(protocol)
    expect(open_connections(server, checked=False) == 0, "daphne marks closed ones otherwise")


CONNECTION_TABLE = Patch(
    name="daphne_connection_table",
    packages=("daphne",),
    targets=("daphne Server.connections",),
    probe=_probe_connection_table,
)


def open_connections(server: Any, *, checked: bool = True) -> int | None:
    """How many connections daphne's ``server`` still serves; None when unknown."""
    if checked and not active(CONNECTION_TABLE.name):
        return None
    connections = getattr(server, "connections", None)
    if not isinstance(connections, dict):
        return None
    return sum(1 for details in list(connections.values()) if "disconnected" not in details)


# ---- twisted_accept_before_close --------------------------------------------------------------


def _check_port() -> None:
    from twisted.internet import tcp

    expect_parameters(tcp.Port.doRead, ("self",), "tcp.Port.doRead", "twisted")
    expect_parameters(tcp.Port.connectionLost, ("self", "reason"), "tcp.Port.connectionLost")
    expect_attributes(tcp.Port, ("stopListening", "loseConnection"), "tcp.Port", "twisted")


class _ProbeReactor:
    """A clock with the one reactor call ``Port.loseConnection`` makes besides it."""

    def __init__(self) -> None:
        from twisted.internet.task import Clock

        self.clock = Clock()
        self.callLater = self.clock.callLater

    def removeReader(self, reader: Any) -> None:
        pass


def _probe_port() -> None:
    from twisted.internet import tcp

    reactor = _ProbeReactor()
    port = tcp.Port(0, None, reactor=reactor)  # type: ignore[arg-type]
    port.connected = True
    events: list[str] = []
    port.doRead = lambda: events.append("accept")  # type: ignore[method-assign]
    port.connectionLost = lambda reason: events.append("close")  # type: ignore[method-assign]
    _accept_then_close(port)
    port.stopListening()
    expect(events == [], "Twisted closed the listening socket at once")
    reactor.clock.advance(0)
    expect(events == ["accept", "close"], "Twisted closes listening sockets otherwise")


ACCEPT_BEFORE_CLOSE = Patch(
    name="twisted_accept_before_close",
    packages=("twisted",),
    targets=("twisted tcp.Port.connectionLost (per port, at drain)",),
    check=_check_port,
    probe=_probe_port,
)


def accept_queued_before_close(port: Any) -> None:
    """Before ``port.stopListening()``: accept what the kernel queued, then close."""
    if active(ACCEPT_BEFORE_CLOSE.name):
        _accept_then_close(port)


def _accept_then_close(port: Any) -> None:
    close = port.connectionLost

    def accept_then_close(reason: Any) -> Any:
        port.doRead()
        return close(reason)

    port.connectionLost = accept_then_close  # read by loseConnection when it schedules it
