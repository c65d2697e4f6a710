"""realtime.ops.drain holds off new TCP handshakes on a listening socket before closing it (Linux):
a new client's connect does not complete, one already queued is served, and once the socket
closes the client is refused, never reset after its connect succeeded."""

from __future__ import annotations

import errno
import select
import socket
import sys

import pytest

from realtime.ops.drain import admit_new_handshakes, hold_new_handshakes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux filter")


def listener() -> tuple[socket.socket, tuple[str, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, sock.getsockname()


def test_held_listener_serves_what_it_queued_and_refuses_new_clients_once_closed():
    sock, address = listener()
    queued = socket.create_connection(address, timeout=5)  # its handshake completed before
    assert hold_new_handshakes(sock) is True

    late = socket.socket()
    late.setblocking(False)
    assert late.connect_ex(address) != 0  # in progress: its SYN was dropped
    sock.settimeout(0.3)
    served, _ = sock.accept()  # the queued connection, whole
    with pytest.raises(TimeoutError):
        sock.accept()  # the late one never completed its handshake
    queued.sendall(b"ping")
    served.settimeout(5)
    assert served.recv(4) == b"ping"
    served.sendall(b"pong")
    assert queued.recv(4) == b"pong"

    sock.close()
    # The client's kernel sends its SYN again about a second later: refused.
    _, writable, _ = select.select([], [late], [], 10)
    assert writable == [late]
    assert late.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
    for s in (queued, served, late):
        s.close()


def test_admitting_again_lets_new_clients_connect():
    sock, address = listener()
    try:
        assert hold_new_handshakes(sock) is True
        admit_new_handshakes(sock)
        admit_new_handshakes(sock)  # nothing left to undo: fine
        with socket.create_connection(address, timeout=5):
            sock.settimeout(5)
            accepted, _ = sock.accept()
            accepted.close()
    finally:
        sock.close()


def test_a_socket_that_is_not_tcp_is_left_as_is():
    a, b = socket.socketpair()
    try:
        assert hold_new_handshakes(a) is False
    finally:
        a.close()
        b.close()
