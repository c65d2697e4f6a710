"""The edge as an attacker meets it, through real daphne workers (and HAProxy where installed):
forwarded headers, frames of any size, slow and silent sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.multiprocess.conftest import ROOT, free_port, wait_port
from tests.multiprocess.test_faults import next_error
from tests.multiprocess.test_two_workers import open_session, wait_rows
from tests.services import require_program

pytestmark = pytest.mark.multiprocess


def serve(deployment, *args: str, **env: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--no-migrate", *args],
        cwd=ROOT, env=deployment.env | env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deployment.procs.append(proc)
    wait_port(port, proc)
    return proc, port


async def until(ws, action: str) -> dict:
    async with asyncio.timeout(10):
        while True:
            frame = await ws.recv()
            if isinstance(frame, str) and json.loads(frame).get("action") == action:
                return json.loads(frame)


def open_fds(proc: subprocess.Popen) -> int:
    return len(os.listdir(f"/proc/{proc.pid}/fd"))


def rss_kb(proc: subprocess.Popen) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# ---------------------------------------------------------------------------------------------
# Forwarded headers
# ---------------------------------------------------------------------------------------------


def test_proxy_headers_without_trusted_proxies_refuse_to_start(deployment):
    result = subprocess.run(
        [sys.executable, "manage.py", "serve", "--port", str(free_port()), "--no-migrate",
         "--proxy-headers"],
        cwd=ROOT, env=deployment.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert "RELAY_TRUSTED_PROXIES" in result.stderr


async def test_a_client_written_forwarded_for_cannot_make_it_local(deployment):
    """The shipped setup's hole: a proxy that appends keeps what the client wrote on the left.
    Only the rightmost hop the trusted proxy added counts: /metrics stays closed."""
    _, port = serve(deployment, "--proxy-headers", RELAY_TRUSTED_PROXIES="127.0.0.1/32")
    chain = {"X-Forwarded-For": "127.0.0.1, 203.0.113.7", "Host": "localhost"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        assert (await http.get("/metrics", headers=chain)).status_code == 401
        direct = await http.get("/metrics", headers={"Host": "localhost"})
    assert direct.status_code == 200  # the trusted proxy itself (loopback) still may

    ws = await connect(
        f"ws://127.0.0.1:{port}/realtime",
        additional_headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.7"},
    )
    found = wait_rows(deployment.db_path, lambda r: len(r) == 1)
    assert found[0]["client_addr"].startswith("203.0.113.7:")
    await ws.close()


async def test_forwarded_headers_from_an_untrusted_peer_are_ignored(deployment):
    _, port = serve(deployment, "--proxy-headers", RELAY_TRUSTED_PROXIES="192.0.2.10")
    ws = await connect(
        f"ws://127.0.0.1:{port}/realtime", additional_headers={"X-Forwarded-For": "203.0.113.9"}
    )
    found = wait_rows(deployment.db_path, lambda r: len(r) == 1)
    assert found[0]["client_addr"].startswith("127.0.0.1:")
    await ws.close()


def haproxy_config(worker_port: int, lb_port: int) -> str:
    """deploy/haproxy.cfg with only Docker's service discovery swapped for one local worker,
    and maxconn lowered to what this machine's FD limit allows (defaults, timeouts and the
    frontend's header rules are the shipped ones)."""
    shipped = (ROOT / "deploy" / "haproxy.cfg").read_text()
    shipped = re.sub(r"maxconn \d+", "maxconn 2000", shipped)
    config = re.sub(r"\nresolvers docker\n(?:    .*\n)+", "\n", shipped)
    config = config.replace("bind :8080", f"bind 127.0.0.1:{lb_port}")
    config = re.sub(r"    default-server .*\n", "    default-server check inter 300ms\n", config)
    config = re.sub(r"    server-template .*\n", f"    server w1 127.0.0.1:{worker_port}\n", config)
    assert "resolvers" not in config and "server w1" in config
    return config


@pytest.fixture
def haproxy(deployment, tmp_path):
    binary = require_program("haproxy", "apt-get install haproxy; .ci/run installs it")

    def start(worker_port: int) -> int:
        lb_port = free_port()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(haproxy_config(worker_port, lb_port))
        proc = subprocess.Popen(
            [binary, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deployment.procs.append(proc)
        wait_port(lb_port, proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until the health check marks the worker up
            try:
                if httpx.get(f"http://127.0.0.1:{lb_port}/healthz", timeout=2).status_code == 200:
                    return lb_port
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("HAProxy never routed to the worker")

    return start


async def test_behind_the_shipped_haproxy_the_client_address_is_what_haproxy_saw(
    deployment, haproxy
):
    _, port = serve(deployment, "--proxy-headers", RELAY_TRUSTED_PROXIES="127.0.0.1")
    lb_port = haproxy(port)
    ws = await connect(
        f"ws://127.0.0.1:{lb_port}/realtime",
        additional_headers={"X-Forwarded-For": "203.0.113.99"},
    )
    await until(ws, "connected")
    found = wait_rows(deployment.db_path, lambda r: len(r) == 1)
    assert found[0]["client_addr"].startswith("127.0.0.1:")  # HAProxy's src, not the header
    await ws.close()


def test_haproxy_cuts_a_slowloris_client_with_408(deployment, haproxy):
    _, port = serve(deployment)
    lb_port = haproxy(port)
    slow = socket.create_connection(("127.0.0.1", lb_port))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    started = time.monotonic()
    slow.settimeout(15)
    answer = b""
    while time.monotonic() - started < 14:
        slow.sendall(b"X-Slow: 1\r\n")  # a header line a second: never a whole head
        try:
            slow.settimeout(1)
            answer = slow.recv(200)
            break
        except TimeoutError:
            continue
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < 12  # timeout http-request 10s
    slow.close()


# ---------------------------------------------------------------------------------------------
# Frames of any size
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "size"),
    [("binary", 2 * 1024 * 1024), ("text", 3 * 1024 * 1024), ("binary", 64 * 1024 * 1024)],
)
async def test_a_frame_above_daphne_s_limit_gets_frame_too_large_and_1009(deployment, kind, size):
    worker, port = serve(deployment)
    ws = await connect(
        f"ws://127.0.0.1:{port}/realtime", origin=f"http://127.0.0.1:{port}", max_size=None
    )
    await until(ws, "connected")
    before = rss_kb(worker)
    # A client still sending when the relay's close handshake times out is cut (documented in
    # compat/daphne_guards.py): its send may fail, but the error and 1009 have reached it.
    with contextlib.suppress(ConnectionClosed):
        await ws.send(bytes(size) if kind == "binary" else "x" * size)
    error = await next_error(ws)
    assert error["code"] == "frame_too_large" and error["fatal"] is True
    assert f"of {size} bytes" in error["message"]
    await ws.wait_closed()
    assert ws.close_code == 1009
    grown = rss_kb(worker) - before
    assert grown < 8 * 1024, f"worker grew {grown} kB for a {size} byte frame"
    rows = wait_rows(deployment.db_path, lambda r: r and r[0]["status"] == "closed")
    assert (rows[0]["close_reason"], rows[0]["close_code"]) == ("frame_too_large", 1009)


# ---------------------------------------------------------------------------------------------
# Slow and silent sockets
# ---------------------------------------------------------------------------------------------


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


async def test_slowloris_and_silent_sockets_are_cut_and_fds_stay_flat(deployment):
    worker, port = serve(deployment, "--handshake-timeout", "3", "--first-message-timeout", "2")
    warm = await open_session(port)  # the worker's database connection (kept) is opened
    await warm.close()
    await asyncio.sleep(0.5)
    idle_fds = open_fds(worker)
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    for sock in slow:
        sock.sendall(b"GET /realtime HTTP/1.1\r\nHost: localhost\r\n")
    try:
        peak = idle_fds
        ws = await open_session(port)  # a real client is still served meanwhile
        started = time.monotonic()
        while time.monotonic() - started < 15:
            for sock in slow:
                try:
                    sock.sendall(b"X-Slow: 1\r\n")  # trickling resets no deadline
                except OSError:
                    pass
            if all(closed_by_server(s) for s in silent + slow):
                break
            for _ in range(5):
                peak = max(peak, open_fds(worker))
                await asyncio.sleep(0.1)
        assert peak >= idle_fds + 50  # the attack did reach the worker (accepted gradually)
        assert all(closed_by_server(s) for s in silent), "silent sockets left open"
        assert all(closed_by_server(s) for s in slow), "slowloris sockets left open"
        assert time.monotonic() - started < 12
        assert open_fds(worker) <= idle_fds + 4  # back to idle (+ the live session's sockets)
        await ws.send(json.dumps({"type": "user_message", "text": "still here"}))
        await until(ws, "response_done")
        await ws.close()
    finally:
        for sock in silent + slow:
            sock.close()
