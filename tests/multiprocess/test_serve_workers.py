"""``serve --workers N``: several daphne processes on one port, supervised, drained together."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import httpx
import pytest

from tests.multiprocess.test_two_workers import open_session, rows, wait_rows

pytestmark = pytest.mark.multiprocess


def children(parent: int) -> set[int]:
    """The live child processes of a process (from /proc)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent and fields[0] != "Z":
            found.add(int(entry))
    return found


def wait_children(parent: int, count: int, gone: int = 0, timeout: float = 20) -> set[int]:
    """Until ``parent`` has ``count`` live children (and ``gone`` is not one of them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = children(parent)
        if len(found) == count and gone not in found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{parent} has children {children(parent)}, not {count}")


async def session_id(ws) -> str:
    """The relay's id of this session (its session_info message), as the rows store it."""
    async with asyncio.timeout(10):
        while True:
            message = json.loads(await ws.recv())
            if message.get("action") == "session_info":
                return message["session_id"].replace("-", "")


async def next_error(ws) -> dict:
    async with asyncio.timeout(10):
        while True:
            frame = await ws.recv()
            if isinstance(frame, str) and json.loads(frame).get("type") == "error":
                return json.loads(frame)


@pytest.fixture
def supervised(deployment):
    """``serve`` with two workers; its workers are killed too if the test fails midway."""
    deployment.env["RELAY_DRAIN_SECONDS"] = "5"
    parent, port = deployment.start_worker(RELAY_WORKERS="2")
    deployment.listening(port, 2)
    try:
        yield parent, port
    finally:
        for pid in children(parent.pid):
            os.kill(pid, signal.SIGKILL)


async def test_workers_share_one_port_restart_when_they_die_and_drain_together(
    deployment, supervised
):
    parent, port = supervised
    workers = wait_children(parent.pid, 2)

    # One port, two processes: the kernel hands a burst of connections to both (an idle
    # worker is woken along with the busy one).
    sessions = list(await asyncio.gather(*(open_session(port) for _ in range(12))))
    live = wait_rows(deployment.db_path, lambda r: sum(x["status"] == "live" for x in r) == 12)
    serving = {int(r["worker_id"].rsplit(":", 1)[1]) for r in live}
    assert serving == workers

    # One metrics view: any worker's /metrics counts the sessions of both.
    metrics = (await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics")).text
    assert 'relay_sessions_opened_total{edge="browser"} 12.0' in metrics

    # A worker that dies is replaced; the other worker's sessions go on.
    dead = sorted(workers)[0]
    ids = [await session_id(ws) for ws in sessions]
    on_dead = {str(r["id"]).replace("-", "") for r in live if r["worker_id"].endswith(f":{dead}")}
    os.kill(dead, signal.SIGKILL)
    replaced = wait_children(parent.pid, 2, gone=dead)
    assert len(replaced - workers) == 1
    deployment.listening(port, 3)  # the new worker serves (until then the port queues)
    survivors = [ws for ws, sid in zip(sessions, ids, strict=True) if sid not in on_dead]
    await survivors[0].send(json.dumps({"type": "user_message", "text": "still here"}))
    async with asyncio.timeout(10):
        while not (
            isinstance(frame := await survivors[0].recv(), str)
            and json.loads(frame).get("action") == "text_done"
        ):
            pass
    fresh = await open_session(port)  # the port still takes new sessions

    # SIGTERM to the supervisor: every worker drains (1012), then everything exits.
    parent.send_signal(signal.SIGTERM)
    started = time.monotonic()
    error = await next_error(fresh)
    assert error["code"] == "server_restarting"
    await fresh.wait_closed()
    assert fresh.close_code == 1012
    assert await asyncio.to_thread(parent.wait, 20) == 0
    assert time.monotonic() - started < 15
    assert children(parent.pid) == set()
    closed = [r for r in rows(deployment.db_path) if not r["worker_id"].endswith(f":{dead}")]
    # Drained sessions wait for their clients to resume them on another worker.
    assert {(r["status"], r["close_reason"]) for r in closed} == {("detached", "")}


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: set[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


async def test_workers_end_with_their_supervisor_even_when_it_is_killed(deployment, supervised):
    """``kill -9`` of ``serve`` leaves no orphan holding the port: each worker drains its
    sessions (1012) and exits."""
    parent, port = supervised
    workers = wait_children(parent.pid, 2)
    ws = await open_session(port)
    parent.kill()
    parent.wait(10)
    error = await next_error(ws)
    assert error["code"] == "server_restarting"
    await ws.wait_closed()
    assert ws.close_code == 1012
    assert await asyncio.to_thread(wait_gone, workers, 15), "a worker outlived its supervisor"
    with pytest.raises(OSError):
        await open_session(port)  # nobody listens any more


def test_several_workers_without_redis_are_refused_with_a_reason(deployment):
    env = {k: v for k, v in deployment.env.items() if k != "REDIS_URL"}
    done = deployment.manage_with(env, "serve", "--workers", "2", "--no-migrate", "--port", "1")
    assert done.returncode != 0
    assert "need the Redis channel layer (set REDIS_URL)" in done.stderr
