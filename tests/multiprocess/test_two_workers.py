"""Two daphne workers, one Redis, one database: control any session from anywhere."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sqlite3
import time

import httpx
import pytest
from websockets.asyncio.client import connect

pytestmark = pytest.mark.multiprocess


def rows(db_path) -> list[dict]:
    with sqlite3.connect(db_path, timeout=20) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM realtime_realtimesession")]


def wait_rows(db_path, predicate, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rows(db_path)
        if predicate(found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"rows never matched: {rows(db_path)}")


async def open_session(port: int):
    ws = await connect(f"ws://127.0.0.1:{port}/realtime", origin=f"http://127.0.0.1:{port}")
    async with asyncio.timeout(10):
        while True:
            message = json.loads(await ws.recv())
            if message.get("action") == "connected":
                return ws


def admin_client(port: int) -> httpx.Client:
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    http.get("/admin/login/")
    login = http.post(
        "/admin/login/?next=/admin/",
        data={
            "username": "admin",
            "password": "admin-pw",
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
            "next": "/admin/",
        },
    )
    assert login.status_code == 302, login.text[:500]
    return http


@pytest.mark.both_apis
async def test_the_admin_on_one_worker_terminates_a_session_on_the_other(deployment):
    worker_a, port_a = deployment.start_worker()
    worker_b, port_b = deployment.start_worker()
    ws_a = await open_session(port_a)
    ws_b = await open_session(port_b)
    live = wait_rows(deployment.db_path, lambda r: sum(x["status"] == "live" for x in r) == 2)
    on_b = next(r for r in live if r["worker_id"].endswith(f":{worker_b.pid}"))
    assert any(r["worker_id"].endswith(f":{worker_a.pid}") for r in live)

    http = await asyncio.to_thread(admin_client, port_a)  # the admin is served by worker A
    page = await asyncio.to_thread(http.get, "/admin/realtime/realtimesession/")
    assert "2 live on 2 worker(s)" in page.text
    session_id = str(on_b["id"])
    if "-" not in session_id:  # SQLite stores UUIDs as 32 hex digits
        session_id = re.sub(r"(\w{8})(\w{4})(\w{4})(\w{4})(\w{12})", r"\1-\2-\3-\4-\5", session_id)
    result = await asyncio.to_thread(
        http.post,
        "/admin/realtime/realtimesession/",
        data={
            "action": "terminate_sessions",
            "_selected_action": session_id,
            "csrfmiddlewaretoken": http.cookies["csrftoken"],
        },
        follow_redirects=True,
    )
    assert "Asked 1 live session(s) to end." in result.text

    async with asyncio.timeout(10):
        error = json.loads(await ws_b.recv())
        while error["type"] != "error":  # session_info may come first
            error = json.loads(await ws_b.recv())
        assert error["code"] == "terminated" and error["fatal"] is True
        assert "administrator" in error["message"]
        await ws_b.wait_closed()
    assert ws_b.close_code == 4000
    closed = wait_rows(deployment.db_path, lambda r: any(x["status"] == "closed" for x in r))
    row_b = next(r for r in closed if r["id"] == on_b["id"])
    assert (row_b["status"], row_b["close_code"], row_b["ended_by"]) == ("closed", 4000, "admin")
    # The session on worker A is untouched and still relays.
    await ws_a.send(json.dumps({"type": "user_message", "text": "still alive"}))
    async with asyncio.timeout(10):
        while True:
            frame = await ws_a.recv()
            if isinstance(frame, str) and json.loads(frame).get("action") == "text_done":
                break
    await ws_a.close()
    http.close()


@pytest.mark.both_apis
async def test_a_killed_worker_s_sessions_become_stale_within_three_heartbeats(deployment):
    _, port_a = deployment.start_worker()
    worker_b, port_b = deployment.start_worker()
    ws_a = await open_session(port_a)  # worker A lives on and runs its reaper
    await open_session(port_b)
    wait_rows(deployment.db_path, lambda r: sum(x["status"] == "live" for x in r) == 2)
    worker_b.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    found = wait_rows(
        deployment.db_path, lambda r: any(x["status"] == "stale" for x in r), timeout=10
    )
    elapsed = time.monotonic() - killed_at
    stale = [r for r in found if r["status"] == "stale"]
    assert len(stale) == 1 and stale[0]["worker_id"].endswith(f":{worker_b.pid}")
    assert stale[0]["close_reason"] == "worker_gone"
    # Window: 3 heartbeat intervals (1 s each) plus polling slack.
    assert elapsed <= 3.5, f"stale after {elapsed:.1f} s"
    assert [r["status"] for r in found if r not in stale] == ["live"]
    await ws_a.close()
