"""Issue 25, finding 3: presence is the guard. The limits, the daily budgets and terminate
all work through a session's registry row, so a session must never run on without it.

Before: a heartbeat that could not be written was logged and the session talked on (its row
went stale: the per-user limit admitted more sessions, the budget was not checked, terminate
closed the stale row and nothing else); a row closed under a live session changed nothing;
a stale row whose session was alive stayed stale (not counted by the limits).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.utils import timezone

from realtime.models import RealtimeSession
from realtime.ops import control, reaper
from realtime.ops import presence as registry
from tests.relay.conftest import Client, configure, relay_tasks

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]

Status = RealtimeSession.Status


def _row(session_id) -> RealtimeSession:
    return RealtimeSession.objects.get(id=session_id)


async def _connected(client: Client) -> str:
    await client.connect()
    return (await client.until(action="session_info"))["session_id"]


async def _until_row(session_id, predicate, timeout: float = 10) -> RealtimeSession:
    async with asyncio.timeout(timeout):
        while True:
            row = await sync_to_async(_row)(session_id)
            if predicate(row):
                return row
            await asyncio.sleep(0.05)


def _down(*args, **kwargs):
    raise OperationalError("could not connect to server: Connection refused")


@pytest.mark.parametrize("write", ["session_heartbeat", "sessions_live"])
async def test_a_session_whose_row_cannot_be_written_ends_with_registry_unavailable(
    monkeypatch, simulator, write
):
    configure(heartbeat_seconds=0.2)
    monkeypatch.setattr(registry, write, _down)
    client = Client()
    session_id = await _connected(client)
    error = await client.until(type="error")
    assert error["code"] == "registry_unavailable" and error["fatal"] is True
    assert "database" in error["message"]
    assert await client.until_closed() == 1011
    assert relay_tasks() == []
    await asyncio.wait_for(simulator.connections[-1].closed.wait(), 3)
    row = await sync_to_async(_row)(session_id)  # the close could still be written
    assert (row.status, row.close_reason, row.close_code) == (
        "closed",
        "registry_unavailable",
        1011,
    )


async def test_a_heartbeat_that_fails_briefly_is_retried_and_the_session_goes_on(monkeypatch):
    configure(heartbeat_seconds=2)  # retried every 0.5 s for up to 2 s
    real, calls = registry.session_heartbeat, []
    loop, written = asyncio.get_running_loop(), asyncio.Event()

    def flaky(**kwargs):  # on the database thread
        calls.append(kwargs["session_id"])
        if len(calls) <= 2:
            raise OperationalError("server closed the connection unexpectedly")
        loop.call_soon_threadsafe(written.set)
        return real(**kwargs)

    monkeypatch.setattr(registry, "session_heartbeat", flaky)
    client = Client()
    session_id = await _connected(client)
    await asyncio.wait_for(written.wait(), 15)
    await client.send_json({"type": "user_message", "text": "still here?"})
    await client.until(action="response_done")
    assert not client.of("error")
    row = await sync_to_async(_row)(session_id)
    assert row.status == Status.LIVE
    await client.close()


def _terminate_as_stale(session_id) -> None:
    """The admin's terminate of a row that looks stale: it closes the row itself."""
    row = _row(session_id)
    row.status = Status.STALE  # what the admin saw
    control.terminate_sessions([row], by="alice")


def _delete(session_id) -> None:
    RealtimeSession.objects.filter(id=session_id).delete()


@pytest.mark.parametrize(
    "change, message",
    [
        (_terminate_as_stale, "An administrator ended this session."),
        (_delete, "The relay closed this session's record; reconnect to continue."),
    ],
    ids=["terminated_while_stale", "deleted"],
)
async def test_a_row_closed_under_a_live_session_ends_it_as_terminated(simulator, change, message):
    configure(heartbeat_seconds=0.2)
    client = Client()
    session_id = await _connected(client)
    await _until_row(session_id, lambda row: row.status == Status.LIVE)
    await sync_to_async(change)(session_id)
    error = await client.until(type="error")
    assert error == {"type": "error", "code": "terminated", "message": message, "fatal": True}
    assert await client.until_closed() == 4000
    assert relay_tasks() == []
    await asyncio.wait_for(simulator.connections[-1].closed.wait(), 3)
    if change is _terminate_as_stale:
        row = await sync_to_async(_row)(session_id)
        assert (row.status, row.close_reason, row.ended_by) == (
            "closed",
            "terminated_stale",
            "alice",
        )


async def test_a_stale_row_of_a_live_session_is_open_again_and_counted_by_the_limits():
    configure(heartbeat_seconds=0.2)
    client = Client()
    session_id = await _connected(client)
    await _until_row(session_id, lambda row: row.status == Status.LIVE)
    # The reaper saw no beat for a while (a long pause, a database outage).
    later = timezone.now() + timedelta(minutes=5)
    assert await sync_to_async(reaper.reap_stale)(heartbeat_seconds=0.2, now=later) == 1
    row = await _until_row(session_id, lambda row: row.status != Status.STALE)
    assert (row.status, row.ended_at, row.close_reason) == (Status.LIVE, None, "")
    live = await sync_to_async(lambda: list(RealtimeSession.objects.live()))()
    assert [r.id for r in live] == [row.id]
    await client.close()
