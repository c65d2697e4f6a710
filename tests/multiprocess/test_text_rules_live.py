"""Issue 25, findings 1 and 4, re-run as the attack was: a real daphne worker on PostgreSQL,
both API families, a browser-like client sending a lone surrogate and NUL in a user_message.

Before: the surrogate killed the session's presence (its row went stale; on the Realtime API
the echoed character then ended the session with internal_error 1011; on GPT-Live no reply
came at all), and NUL made PostgreSQL refuse the session's whole conversation batch.
"""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from websockets.asyncio.client import connect

from tests.multiprocess.test_edge_security import serve, until
from tests.multiprocess.test_outages import postgres_env  # noqa: F401 (a fixture)

pytestmark = pytest.mark.multiprocess


async def next_error(ws) -> dict:
    async with asyncio.timeout(10):
        while True:
            frame = await ws.recv()
            if isinstance(frame, str) and json.loads(frame)["type"] == "error":
                return json.loads(frame)


def rows(url: str, session_id: str) -> tuple[tuple, list[tuple]]:
    with psycopg.connect(url.replace("postgres://", "postgresql://", 1)) as db:
        row = db.execute(
            "SELECT status, close_reason FROM realtime_realtimesession WHERE id = %s",
            (session_id,),
        ).fetchone()
        entries = db.execute(
            "SELECT role, kind, text FROM realtime_conversationentry WHERE session_id = %s "
            "ORDER BY seq",
            (session_id,),
        ).fetchall()
    return row, entries


@pytest.mark.both_apis
async def test_a_lone_surrogate_and_nul_are_refused_and_the_session_and_record_hold(
    deployment,
    postgres_env,  # noqa: F811
    upstream_api,
):
    _, port = serve(deployment, RELAY_STORE_TRANSCRIPTS="true")
    url = deployment.env["DATABASE_URL"]
    ws = await connect(f"ws://127.0.0.1:{port}/realtime", origin=f"http://127.0.0.1:{port}")
    await until(ws, "connected")
    session_id = (await until(ws, "session_info"))["session_id"]
    for escaped, shown in (("\\udfff", "U+DFFF"), ("\\u0000", "U+0000")):
        await ws.send('{"type":"user_message","text":"hi ' + escaped + ' there"}')
        error = await next_error(ws)
        assert (error["code"], error["fatal"]) == ("invalid_field", False)
        assert shown in error["message"]
    await ws.send(json.dumps({"type": "user_message", "text": "still there?"}))
    await until(ws, "response_done")
    async with asyncio.timeout(10):  # written with a heartbeat (1 s) while it is live
        while True:
            row, entries = await asyncio.to_thread(rows, url, session_id)
            if ("user", "typed", "still there?") in entries:
                break
            await asyncio.sleep(0.1)
    assert row[0] == "live"
    await ws.close()
    async with asyncio.timeout(10):
        while row[0] != "closed":
            await asyncio.sleep(0.1)
            row, entries = await asyncio.to_thread(rows, url, session_id)
    assert row == ("closed", "client_closed")
    assert [kind for _, kind, _ in entries] == ["typed", "answer", "ended"]
