"""The daphne/autobahn/Twisted internals that realtime.compat.daphne_guards and realtime.ops.drain
reach into: this fails, naming the module, when an upgrade moves them."""

from __future__ import annotations

import inspect


def test_autobahn_still_checks_the_message_size_where_the_frame_guard_hooks_in():
    """realtime.compat.daphne_guards: autobahn calls _max_message_size_exceeded from
    onMessageFrameBegin (before the payload is read) and then feeds frames through the
    hooks the guard wraps."""
    from autobahn.websocket.protocol import WebSocketProtocol as Autobahn
    from daphne.ws_protocol import WebSocketProtocol

    from realtime.compat import daphne_guards

    source = inspect.getsource(Autobahn.onMessageFrameBegin)
    assert "_max_message_size_exceeded" in source, "autobahn moved its message-size check"
    for name in ("onMessageFrameData", "onMessageFrameEnd", "onMessageEnd"):
        assert callable(getattr(Autobahn, name, None)), f"autobahn dropped {name}"
    assert "application_queue" in inspect.getsource(WebSocketProtocol.onMessage)
    daphne_guards.install_frame_guard()
    assert getattr(WebSocketProtocol, "_relay_frame_guard", False)


def test_twisted_s_http_channel_still_has_the_steps_the_deadlines_follow():
    """realtime.compat.daphne_guards.install_request_deadlines: Twisted's own idle timer is
    disarmed in allContentReceived and re-armed in requestDone, as the deadlines are."""
    from twisted.web.http import HTTPChannel

    for name in ("connectionMade", "dataReceived", "allHeadersReceived", "requestDone",
                 "connectionLost"):  # fmt: skip
        assert callable(getattr(HTTPChannel, name, None)), f"HTTPChannel.{name} is gone"
    assert "setTimeout(self._savedTimeOut)" in inspect.getsource(HTTPChannel.requestDone)
    assert hasattr(HTTPChannel, "persistent")


def test_the_drain_s_reach_into_twisted_ports_and_daphne_s_server_still_holds():
    """realtime.ops.drain: a listening port closes one loop turn after stopListening, through
    connectionLost; daphne cancels every application from kill_all_applications."""
    from daphne.server import Server
    from twisted.internet.tcp import Port

    assert "self.connectionLost" in inspect.getsource(Port.loseConnection)
    assert callable(Port.doRead)
    assert "cancel()" in inspect.getsource(Server.kill_all_applications)
    assert "kill_all_applications" in inspect.getsource(Server.run)
    assert callable(Server.listen_success)
