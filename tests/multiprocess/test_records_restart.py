"""Conversation records outlive their worker: written every heartbeat, so a worker killed
mid-session loses at most the last heartbeat's entries, and a restarted worker's admin shows
the rest; a drained worker writes everything, the ending included."""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import time

import pytest

from tests.multiprocess.test_faults import text_turn
from tests.multiprocess.test_two_workers import admin_client, open_session

pytestmark = pytest.mark.multiprocess


def entries(db_path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(db_path, timeout=20) as db:
        return list(
            db.execute(
                "SELECT session_id, role, kind, text FROM realtime_conversationentry "
                "ORDER BY session_id, seq"
            )
        )


def wait_entries(db_path, count: int, timeout: float = 5) -> list[tuple[str, str, str, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = entries(db_path)
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"expected {count} entries, have {entries(db_path)}")


def dashed(uuid_hex: str) -> str:
    return re.sub(r"^(\w{8})(\w{4})(\w{4})(\w{4})(\w{12})$", r"\1-\2-\3-\4-\5", uuid_hex)


async def test_entries_written_before_a_worker_is_killed_survive_its_restart(deployment):
    worker, port = deployment.start_worker()
    ws = await open_session(port)
    await text_turn(ws, "remember the blue umbrella")
    # Within a heartbeat (1 s here) of being said, it is in the database.
    written = await asyncio.to_thread(wait_entries, deployment.db_path, 2, 2.5)
    assert [(role, kind) for _, role, kind, _ in written] == [
        ("user", "typed"),
        ("assistant", "answer"),
    ]
    worker.send_signal(signal.SIGKILL)
    await asyncio.to_thread(worker.wait, 10)

    # The killed worker wrote no ending (it had no chance); what it wrote is all there.
    assert entries(deployment.db_path) == written
    _, port = deployment.start_worker(port=port)  # the worker, restarted
    session_id = dashed(written[0][0])
    http = await asyncio.to_thread(admin_client, port)
    found = await asyncio.to_thread(
        http.get, "/admin/realtime/realtimesession/", params={"q": "blue umbrella"}
    )
    assert found.text.count(f'value="{session_id}"') == 1  # its row's checkbox
    page = (
        await asyncio.to_thread(http.get, f"/admin/realtime/realtimesession/{session_id}/change/")
    ).text
    said = page.index("remember the blue umbrella")
    answered = page.index("You said: remember the blue umbrella.")
    assert said < answered
    http.close()


async def test_a_drained_worker_writes_the_whole_conversation_with_its_ending(deployment):
    deployment.env["RELAY_HEARTBEAT_SECONDS"] = "30"  # the answer waits for the close
    worker, port = deployment.start_worker()
    ws = await open_session(port)
    await text_turn(ws, "one last thing")
    assert ("assistant", "answer") not in [(r, k) for _, r, k, _ in entries(deployment.db_path)]
    worker.send_signal(signal.SIGTERM)
    await asyncio.to_thread(worker.wait, 15)
    recorded = [(role, kind, text) for _, role, kind, text in entries(deployment.db_path)]
    assert recorded[0] == ("user", "typed", "one last thing")
    assert recorded[1][:2] == ("assistant", "answer")
    # Detached for a resume elsewhere (tests/multiprocess/test_resume_workers.py).
    assert recorded[-1] == ("session", "detached", "server_restarting")
    await ws.close()
