"""Faults and limits with real processes: drain on SIGTERM, dead clients, Redis restarts."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest
from websockets.asyncio.client import connect

from realtime.ops.embedded import start_simulator_thread
from tests.multiprocess.conftest import ROOT, free_port, wait_port
from tests.multiprocess.test_two_workers import open_session, rows, wait_rows
from tests.services import require_program

pytestmark = pytest.mark.multiprocess


async def next_error(ws) -> dict:
    async with asyncio.timeout(15):
        while True:
            frame = await ws.recv()
            if isinstance(frame, str) and json.loads(frame)["type"] == "error":
                return json.loads(frame)


async def text_turn(ws, text: str = "are you there") -> None:
    await ws.send(json.dumps({"type": "user_message", "text": text}))
    async with asyncio.timeout(15):
        while True:
            frame = await ws.recv()
            if isinstance(frame, str) and json.loads(frame).get("action") == "response_done":
                return


@pytest.mark.both_apis
async def test_the_total_session_limit_holds_across_two_workers(deployment):
    deployment.env["RELAY_MAX_SESSIONS_TOTAL"] = "2"
    _, port_a = deployment.start_worker()
    _, port_b = deployment.start_worker()
    first = await open_session(port_a)
    second = await open_session(port_b)
    ws = await connect(f"ws://127.0.0.1:{port_a}/realtime", origin=f"http://127.0.0.1:{port_a}")
    error = await next_error(ws)
    assert error["code"] == "too_many_sessions"
    await ws.wait_closed()
    assert ws.close_code == 4003
    await second.close()
    wait_rows(deployment.db_path, lambda r: sum(x["status"] == "closed" for x in r) == 2)
    again = await open_session(port_a)  # worker A sees B's slot free again
    await asyncio.gather(first.close(), again.close())


@pytest.mark.both_apis
async def test_sigterm_drains_sessions_with_1012_and_exits(deployment):
    deployment.env["RELAY_DRAIN_SECONDS"] = "5"
    worker, port = deployment.start_worker()
    sessions = [await open_session(port) for _ in range(2)]
    wait_rows(deployment.db_path, lambda r: sum(x["status"] == "live" for x in r) == 2)
    worker.send_signal(signal.SIGTERM)
    started = time.monotonic()
    for ws in sessions:
        error = await next_error(ws)
        assert error["code"] == "server_restarting" and error["fatal"] is True
        await ws.wait_closed()
        assert ws.close_code == 1012
    assert await asyncio.to_thread(worker.wait, 15) is not None
    assert time.monotonic() - started < 15
    # Detached, not closed: their clients may resume them on another worker
    # (tests/multiprocess/test_resume_workers.py) within RELAY_RESUME_SECONDS.
    kept = rows(deployment.db_path)
    assert {(r["status"], r["close_reason"]) for r in kept} == {("detached", "")}


def test_a_client_that_goes_silent_is_dropped_and_its_upstream_closed(deployment):
    """Realtime API only: test_consumer closes the upstream of a leaving client on both."""
    sim = start_simulator_thread(pace="fast")
    try:
        port = free_port()
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--no-migrate", "--ping-interval", "1", "--ping-timeout", "2"],
            cwd=ROOT, env=deployment.env | {"REALTIME_SIMULATOR_URL": sim.base_url},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deployment.procs.append(worker)
        wait_port(port, worker)
        script = (
            "import asyncio,sys\n"
            "from websockets.asyncio.client import connect\n"
            "async def main():\n"
            f"    ws = await connect('ws://127.0.0.1:{port}/realtime', ping_interval=None)\n"
            "    await ws.recv()\n"
            "    print('ready', flush=True)\n"
            "    await asyncio.sleep(3600)\n"
            "asyncio.run(main())\n"
        )
        client = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
        deployment.procs.append(client)
        assert client.stdout.readline().strip() == b"ready"
        wait_rows(deployment.db_path, lambda r: any(x["status"] == "live" for x in r))
        client.send_signal(signal.SIGSTOP)  # a frozen laptop: TCP stays up, nothing answers
        frozen_at = time.monotonic()
        # Its socket is gone without a close: the session waits for a resume (detached).
        found = wait_rows(
            deployment.db_path, lambda r: r and r[0]["status"] == "detached", timeout=15
        )
        assert found[0]["close_reason"] == ""
        record = sim.simulator.connections[-1]
        deadline = time.monotonic() + 5
        while not record.closed.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert record.closed.is_set() and record.closed_by == "client"
        # Within ping interval + ping timeout (+ slack for daphne's 1 s timer).
        assert time.monotonic() - frozen_at < 8
        client.send_signal(signal.SIGCONT)
    finally:
        sim.stop()


@pytest.fixture
def private_redis(tmp_path):
    server = require_program("redis-server", "apt-get install redis-server")
    port = free_port()

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(port, proc)
        return proc

    state = {"proc": start()}

    class Redis:
        url = f"redis://127.0.0.1:{port}/0"

        def stop(self) -> None:
            state["proc"].kill()
            state["proc"].wait(10)

        def restart(self) -> None:
            state["proc"] = start()

    yield Redis()
    if state["proc"].poll() is None:
        state["proc"].kill()
        state["proc"].wait(10)


async def test_live_sessions_survive_a_redis_restart_and_control_resumes(deployment, private_redis):
    """Realtime API only: the channel layer is the same for both API families."""
    deployment.env["REDIS_URL"] = private_redis.url
    _, port = deployment.start_worker()
    ws = await open_session(port)
    wait_rows(deployment.db_path, lambda r: any(x["status"] == "live" for x in r))
    private_redis.stop()
    await text_turn(ws, "redis is down")  # audio and text never touch the channel layer
    during = await open_session(port)  # documented: admitted, not addressable until Redis returns
    await text_turn(during, "new while down")
    private_redis.restart()
    live = wait_rows(deployment.db_path, lambda r: sum(x["status"] == "live" for x in r) == 2)

    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(
        hosts=[private_redis.url], prefix=deployment.env["REDIS_CHANNEL_PREFIX"]
    )
    for row in live:
        await layer.send(row["channel_name"], {"type": "realtime.terminate", "by": "ops"})
    for session in (ws, during):
        error = await next_error(session)  # the consumer's receive retries with backoff ≤ 10 s
        assert error["code"] == "terminated"
        await session.wait_closed()
        assert session.close_code == 4000
    await layer.flush()


@pytest.mark.parametrize("kind", ["text", "binary"])
async def test_oversized_frames_get_a_clean_1009_through_daphne(deployment, kind):
    """Below daphne's own 1 MiB limit (which drops without a close frame) the relay says why.
    Realtime API only: refused at the edge, before any upstream (test_consumer: both)."""
    _, port = deployment.start_worker()
    ws = await open_session(port)
    await ws.send("x" * 70_000 if kind == "text" else bytes(300_000))
    error = await next_error(ws)
    assert error["code"] == "frame_too_large" and error["fatal"] is True
    await ws.wait_closed()
    assert ws.close_code == 1009
