"""What serve and the drain ask of daphne's command line and server and of Twisted's ports
(realtime/compat/daphne_server.py): used while they fit, the plain daphne path otherwise."""

from __future__ import annotations

import asyncio
import logging

import pytest

from realtime.compat import daphne_server, patching
from tests.compat.conftest import fresh


@pytest.fixture
def daphne_runs(monkeypatch):
    """daphne's command line, recording what it would run instead of serving."""
    from daphne.cli import CommandLineInterface

    runs = []

    def run(self, args):
        runs.append((self, args))

    monkeypatch.setattr(CommandLineInterface, "run", run)
    return runs


def serve(built: list, **hooks):
    async def until_drained():
        return None

    daphne_server.run(
        ["-v", "0"],
        lambda: built.append("app") or "the application",
        before_run=lambda: built.append("settled"),
        on_listen=hooks.get("on_listen", lambda server, port: None),
        until_drained=hooks.get("until_drained", until_drained),
    )


def test_serve_runs_daphne_s_command_line_with_the_application_it_built(redecide, daphne_runs):
    from daphne.server import Server

    fresh(redecide, daphne_server.CLI_APPLICATION)
    fresh(redecide, daphne_server.DRAIN_HOOKS)
    built: list[str] = []
    listened = []
    serve(built, on_listen=lambda server, port: listened.append(port))
    [(cli, args)] = daphne_runs
    assert args == ["-v", "0", daphne_server.APPLICATION_PATH]
    assert cli.load_asgi_app(args[-1]) == "the application" and built == ["app", "settled"]
    assert issubclass(cli.server_class, Server) and cli.server_class is not Server
    server = cli.server_class(application=None, endpoints=["tcp:port=0"], signal_handlers=False)
    server.listen_success("port-1")
    assert listened == ["port-1"]


def test_a_changed_daphne_command_line_serves_the_application_by_path(
    redecide, daphne_runs, monkeypatch, caplog
):
    """daphne then imports relay_site.asgi:application (built from the environment, which
    serve prepared) with its own server: no drain hooks, but a working relay."""
    from daphne.cli import CommandLineInterface
    from daphne.server import Server

    monkeypatch.setattr(CommandLineInterface, "load_asgi_app", lambda self: None)
    fresh(redecide, daphne_server.CLI_APPLICATION)
    built: list[str] = []
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        serve(built)
    [(cli, args)] = daphne_runs
    assert type(cli) is CommandLineInterface and cli.server_class is Server
    assert args[-1] == daphne_server.APPLICATION_PATH and built == ["settled"]
    [warning] = [r.getMessage() for r in caplog.records]
    assert "daphne_cli_application" in warning and "daphne 4." in warning


async def test_daphne_cancels_the_applications_only_once_the_drain_is_over(monkeypatch):
    from daphne.server import Server

    drained = asyncio.Event()
    killed = []
    kill = Server.kill_all_applications

    async def until_drained():
        await drained.wait()

    def recording(self):
        killed.append(True)
        return kill(self)

    monkeypatch.setattr(Server, "kill_all_applications", recording)
    server_class = daphne_server.server_class(lambda server, port: None, until_drained)
    server = server_class(application=None, endpoints=["tcp:port=0"], signal_handlers=False)
    server.connections = {}
    done = server.kill_all_applications().asFuture(asyncio.get_running_loop())
    await asyncio.sleep(0.05)
    assert killed == [] and not done.done()
    drained.set()
    async with asyncio.timeout(5):
        await done
    assert killed == [True]


def test_the_drain_counts_daphne_s_open_connections(redecide):
    from daphne.server import Server

    assert patching.install(fresh(redecide, daphne_server.CONNECTION_TABLE))
    server = Server(application=None, endpoints=["tcp:port=0"], signal_handlers=False)
    server.connections = {}
    first, second = object(), object()
    server.protocol_connected(first)
    server.protocol_connected(second)
    server.protocol_disconnected(first)
    assert daphne_server.open_connections(server) == 1
    patching.reset(daphne_server.CONNECTION_TABLE.name)
    assert daphne_server.open_connections(server) is None  # unknown: the drain waits it out


def test_a_changed_twisted_port_is_closed_plainly_at_drain(redecide, monkeypatch, caplog):
    from twisted.internet import tcp

    assert patching.install(fresh(redecide, daphne_server.ACCEPT_BEFORE_CLOSE))
    patching.reset(daphne_server.ACCEPT_BEFORE_CLOSE.name)
    monkeypatch.setattr(tcp.Port, "doRead", lambda self, how_many: None)
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        assert not patching.install(daphne_server.ACCEPT_BEFORE_CLOSE)
    assert "twisted 26." in caplog.records[0].getMessage()

    class Port:
        def connectionLost(self, reason):
            return reason

    port = Port()
    daphne_server.accept_queued_before_close(port)
    assert "connectionLost" not in vars(port)  # left as Twisted closes it
