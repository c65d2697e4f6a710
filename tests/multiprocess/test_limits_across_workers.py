"""Throttles and budgets hold across workers: two daphne processes, one Redis, one database."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.multiprocess.test_edge_security import until
from tests.multiprocess.test_faults import next_error

pytestmark = pytest.mark.multiprocess


def basic(password: str) -> dict[str, str]:
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Host": "localhost"}


async def ticket(port: int, password: str = "admin-pw") -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(
            f"http://127.0.0.1:{port}/api/realtime/ticket", headers=basic(password)
        )


async def test_connects_per_minute_are_counted_across_workers(deployment):
    deployment.env["RELAY_MAX_CONNECTS_PER_MINUTE"] = "3"
    _, a = deployment.start_worker()
    _, b = deployment.start_worker()
    for port in (a, b, a):
        ws = await connect(f"ws://127.0.0.1:{port}/realtime")
        await until(ws, "connected")
        await ws.close()
    ws = await connect(f"ws://127.0.0.1:{b}/realtime")
    error = await next_error(ws)
    assert error["code"] == "too_many_connects" and "try again in" in error["message"]
    await ws.wait_closed()
    assert ws.close_code == 4006


async def test_failed_logins_are_counted_across_workers(deployment):
    deployment.env["RELAY_LOGIN_FAILURES_PER_USER"] = "4"
    _, a = deployment.start_worker()
    _, b = deployment.start_worker()
    statuses = [(await ticket(port, "wrong")).status_code for port in (a, b, a, b)]
    assert statuses == [401] * 4
    for port in (a, b):
        refused = await ticket(port)  # the right password, but the username is locked
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0


async def test_a_daily_budget_is_shared_by_a_user_s_sessions_on_two_workers(deployment):
    deployment.env["RELAY_USER_DAILY_SECONDS"] = "4"
    _, a = deployment.start_worker()
    _, b = deployment.start_worker()
    sessions = []
    for port in (a, b):
        token = (await ticket(port)).json()["ticket"]
        ws = await connect(f"ws://127.0.0.1:{port}/realtime?ticket={token}")
        info = await until(ws, "session_info")
        assert info["budget"]["seconds_left"] <= 4
        sessions.append(ws)
    started = time.monotonic()
    for ws in sessions:
        error = await next_error(ws)
        assert error["code"] == "budget_exhausted" and "resets at 00:00 UTC" in error["message"]
        await ws.wait_closed()
        assert ws.close_code == 4007
    # Two sessions share 4 s: each ends after about 2 s (+ up to one 1 s heartbeat).
    assert time.monotonic() - started < 4.5
    token = (await ticket(a)).json()["ticket"]
    again = await connect(f"ws://127.0.0.1:{b}/realtime?ticket={token}")
    error = json.loads(await again.recv())
    assert error["code"] == "budget_exhausted"
    await asyncio.wait_for(again.wait_closed(), 10)
    assert again.close_code == 4007
