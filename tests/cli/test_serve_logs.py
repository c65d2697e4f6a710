"""What a person sees in `manage.py serve`'s output: a URL they can open, each Django warning
once, no traceback when a browser leaves early, and a quiet shutdown when nothing is live."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import uuid
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime.ops.logs import _BASE64_RUN

from .conftest import serving

pytestmark = pytest.mark.slow  # `manage.py serve` as a person runs it, per test

UPGRADE = (
    "GET /realtime HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
)


async def leave_before_ready(port: int) -> None:
    """Browsers that close the tab while the relay is still connecting upstream: a clean
    close, and a socket dropped right after the upgrade request."""
    for _ in range(3):
        ws = await connect(f"ws://127.0.0.1:{port}/realtime", origin=f"http://127.0.0.1:{port}")
        await ws.close()
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(UPGRADE.format(port=port).encode())


async def one_session(port: int) -> None:
    """A client that waits until its session is live upstream, then leaves."""
    url, origin = f"ws://127.0.0.1:{port}/realtime", f"http://127.0.0.1:{port}"
    async with connect(url, origin=origin) as ws:
        async with asyncio.timeout(20):
            while True:
                frame = await ws.recv()
                if isinstance(frame, str) and json.loads(frame).get("action") == "connected":
                    break


async def unknown_path(port: int) -> int:
    """A WebSocket to a path no route serves: the handshake's HTTP status."""
    try:
        async with connect(f"ws://127.0.0.1:{port}/nowhere", origin=f"http://127.0.0.1:{port}"):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def wait_for(served, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in served.output():
        assert time.monotonic() < deadline, f"never printed {text!r}:\n{served.output()}"
        time.sleep(0.1)


def test_serve_output_is_clean(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        wait_for(served, "Relay on ")
        asyncio.run(one_session(served.port))
        wait_for(served, "client disconnected (code 1000)")
        asyncio.run(leave_before_ready(served.port))
        wait_for(served, "closed; audio in")
        time.sleep(1.0)  # the embedded simulator sees the dropped upstream connects
        with httpx.Client(base_url=f"http://127.0.0.1:{served.port}") as http:
            assert http.get("/no-such-page").status_code == 404
        wait_for(served, "Not Found: /no-such-page")
        # Issue 25: refused with 403 and one INFO line (was 500 and an ERROR traceback).
        assert asyncio.run(unknown_path(served.port)) == 403
        wait_for(served, "unknown path /nowhere")
        time.sleep(0.5)
        output = served.stop()
    assert served.proc.returncode == 0, output
    # A URL a person can open, not the wildcard bind address.
    assert f"Relay on http://localhost:{served.port}/ " in output
    assert "http://0.0.0.0" not in output
    # Clients that left early: logged as sessions, not as the simulator's tracebacks.
    assert "client disconnected" in output
    assert "Traceback" not in output and "opening handshake failed" not in output
    assert " ERROR " not in output
    assert output.count("websocket to unknown path /nowhere refused") == 1
    # Django's request warning appears once.
    assert output.count("Not Found: /no-such-page") == 1
    # Shutting down with nothing live says so at INFO; the only WARNING is the 404's.
    assert re.search(r" INFO realtime\.ops\.runtime shutting down: no live sessions", output)
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "Not Found: /no-such-page" in warnings[0], warnings
    assert not _BASE64_RUN.search(output)  # no audio in the log
    # Nothing a person cannot act on: daphne's HTTP/2 notice, the SDK's websockets logger
    # saying "connection open" for each session's upstream socket.
    assert "Listening on TCP address" in output  # daphne's own lines are still there
    assert "HTTP/2" not in output
    assert " live on Simulator (gpt-realtime)" in output  # the session did connect upstream
    assert "connection open" not in output


def test_the_gpt_live_banner_names_gpt_live(tmp_path: Path) -> None:
    with serving(tmp_path, RELAY_UPSTREAM_API="live") as served:
        wait_for(served, "Relay on ")
        output = served.stop()
    banner = " ".join(output.split("Relay on ")[0].split())
    assert "relay talks to its built-in simulator of GPT-Live at ws://127.0.0.1:" in banner
    assert "Realtime API" not in banner
    assert "→ Simulator (gpt-live-1); 1 worker process(es)" in output


@pytest.mark.multiprocess
def test_several_workers_print_one_banner_with_their_port_and_count(
    tmp_path: Path, redis_url: str
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"  # keys of its own in the shared Redis
    with serving(
        tmp_path, "--workers", "2", port_flag=True, REDIS_URL=redis_url, REDIS_CHANNEL_PREFIX=prefix
    ) as served:
        deadline = time.monotonic() + 30
        while served.output().count("Listening on TCP address") < 2:
            assert time.monotonic() < deadline, served.output()
            time.sleep(0.1)
        output = served.stop()
    relay_lines = [line for line in output.splitlines() if line.startswith("Relay on ")]
    assert relay_lines == [
        f"Relay on http://localhost:{served.port}/ (WebSocket /realtime) → "
        "Simulator (gpt-realtime); 2 worker process(es)"
    ]
    assert output.count("OFFLINE SIMULATOR") == 1
    assert output.count(f"Listening on TCP address 0.0.0.0:{served.port}") == 2
