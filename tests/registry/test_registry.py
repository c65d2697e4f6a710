"""The session registry: rows, heartbeats and counters, the reaper, terminate, the admin."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import AsyncClient
from django.utils import timezone

from realtime.kernel.counters import SessionCounters
from realtime.models import RealtimeSession
from realtime.ops import batching, control, reaper
from realtime.ops import presence as registry
from tests.relay.conftest import Client, configure, relay_tasks

Status = RealtimeSession.Status


def make_row(**fields) -> RealtimeSession:
    defaults = {"provider": "simulator", "model": "m", "worker_id": "host:1"}
    return RealtimeSession.objects.create(**(defaults | fields))


@pytest.mark.django_db
def test_the_reaper_marks_silent_open_rows_stale_and_leaves_others():
    now = timezone.now()
    silent = make_row(status=Status.LIVE, last_seen_at=now - timedelta(seconds=21))
    fresh = make_row(status=Status.LIVE, last_seen_at=now - timedelta(seconds=9))
    closed = make_row(status=Status.CLOSED, last_seen_at=now - timedelta(hours=1))
    connecting = make_row(status=Status.CONNECTING, last_seen_at=now - timedelta(seconds=60))
    assert reaper.reap_stale(heartbeat_seconds=10, now=now) == 2
    statuses = {r.id: r.status for r in RealtimeSession.objects.all()}
    assert statuses == {
        silent.id: Status.STALE,
        fresh.id: Status.LIVE,
        closed.id: Status.CLOSED,
        connecting.id: Status.STALE,
    }
    assert list(RealtimeSession.objects.live()) == [fresh]


@pytest.mark.django_db
def test_a_starting_worker_closes_rows_it_left_behind():
    mine = make_row(worker_id="h:7", status=Status.LIVE)
    other = make_row(worker_id="h:8", status=Status.LIVE)
    assert reaper.close_left_behind(worker="h:7", before=timezone.now()) == 1
    mine.refresh_from_db()
    other.refresh_from_db()
    assert (mine.status, mine.close_reason, other.status) == (
        Status.CLOSED,
        "worker_restarted",
        Status.LIVE,
    )


@pytest.mark.django_db
def test_a_heartbeat_revives_a_stale_row_and_writes_counters():
    row = make_row(status=Status.STALE, last_seen_at=timezone.now() - timedelta(minutes=5))
    stats = SessionCounters(
        audio_bytes_in=48_000 * 3, input_tokens=7, output_tokens=11, barge_ins=2
    )
    presence = registry.Presence(row.id, stats, batching.PresenceWrites(), 10)
    registry.session_heartbeat(session_id=row.id, counters=presence.counters())
    row.refresh_from_db()
    assert (row.audio_ms_in, row.input_tokens, row.output_tokens, row.barge_ins) == (3000, 7, 11, 2)
    assert timezone.now() - row.last_seen_at < timedelta(seconds=5)


async def wait_row(predicate, timeout: float = 5) -> RealtimeSession:
    async with asyncio.timeout(timeout):
        while True:
            rows = await sync_to_async(list)(RealtimeSession.objects.all())
            for row in rows:
                if predicate(row):
                    return row
            await asyncio.sleep(0.05)


@pytest.mark.usefixtures("relay_config")
@pytest.mark.django_db(transaction=True)
async def test_a_session_row_goes_live_counts_and_closes():
    configure(heartbeat_seconds=0.2)
    client = Client()
    await client.connect()
    row = await wait_row(lambda r: r.status == Status.LIVE)
    assert (
        row.provider == "simulator" and row.channel_name and row.worker_id == registry.worker_id()
    )
    assert row.ready_at is not None
    await client.send_json({"type": "user_message", "text": "count me"})
    await client.until(action="response_done")
    row = await wait_row(lambda r: r.responses == 1 and r.output_tokens > 0)
    assert row.text_messages == 1 and row.audio_ms_out > 0
    await client.close()
    row = await wait_row(lambda r: r.status == Status.CLOSED)
    assert (row.close_code, row.close_reason) == (1000, "client_closed")
    assert row.ended_at is not None


@pytest.mark.usefixtures("relay_config")
@pytest.mark.django_db(transaction=True)
async def test_terminate_by_channel_name_ends_the_session_with_4000(simulator):
    client = Client()
    await client.connect()
    row = await wait_row(lambda r: r.status == Status.LIVE)
    await control.send_terminate([row.channel_name], by="alice")
    error = await client.until(type="error")
    assert error == {
        "type": "error",
        "code": "terminated",
        "message": "An administrator ended this session.",
        "fatal": True,
    }
    assert await client.until_closed() == 4000
    row = await wait_row(lambda r: r.status == Status.CLOSED)
    assert (row.close_code, row.close_reason, row.ended_by) == (4000, "terminated", "alice")
    await asyncio.wait_for(simulator.connections[-1].closed.wait(), 3)
    assert relay_tasks() == []


@pytest.mark.usefixtures("relay_config")
@pytest.mark.django_db(transaction=True)
async def test_a_broadcast_reaches_every_session():
    clients = [Client() for _ in range(3)]
    await asyncio.gather(*(c.connect() for c in clients))
    await control.broadcast_terminate(by="maintenance")
    codes = await asyncio.gather(*(c.until_closed() for c in clients))
    assert codes == [4000, 4000, 4000]


@pytest.mark.usefixtures("relay_config")
@pytest.mark.django_db(transaction=True)
async def test_the_admin_lists_live_sessions_and_its_action_terminates_one():
    await sync_to_async(get_user_model().objects.create_superuser)("root", "r@x.io", "pw")
    admin = AsyncClient()
    await admin.alogin(username="root", password="pw")
    first, second = Client(), Client()
    await first.connect()
    await second.connect()
    await wait_row(lambda r: r.status == Status.LIVE)
    page = await admin.get("/admin/realtime/realtimesession/")
    assert page.status_code == 200
    assert "2 live on 1 worker(s)" in page.content.decode()
    rows = await sync_to_async(list)(RealtimeSession.objects.live().order_by("started_at"))
    response = await admin.post(
        "/admin/realtime/realtimesession/",
        {"action": "terminate_sessions", "_selected_action": [str(rows[0].id)]},
        follow=True,
    )
    assert "Asked 1 live session(s) to end." in response.content.decode()
    assert await first.until_closed() == 4000
    await second.send_json({"type": "user_message", "text": "still here"})
    await second.until(action="response_done")
    await second.close()


@pytest.mark.django_db
def test_the_admin_is_staff_only(client):
    get_user_model().objects.create_user("bob", password="pw")
    client.login(username="bob", password="pw")
    response = client.get("/admin/realtime/realtimesession/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_the_sessions_list_links_to_the_usage_page(admin_client):
    page = admin_client.get("/admin/realtime/realtimesession/").content.decode()
    assert 'href="/admin/usage/"' in page and "Token usage per user and day" in page


@pytest.mark.django_db
def test_a_batch_of_registrations_respects_the_limits_in_arrival_order():
    """One registration call for a burst of connects admits exactly as many as the limits
    allow, in (started_at, id) order, counting open rows of other workers and not counting
    the rows it refused."""
    from realtime.kernel.config import load_config

    ann, bob = (get_user_model().objects.create_user(n) for n in ("ann", "bob"))
    make_row(worker_id="other:1")  # another worker's open session
    make_row(worker_id="other:1", status=RealtimeSession.Status.CLOSED)  # holds no slot
    make_row(worker_id="other:1", user=ann)
    config = load_config({"RELAY_MAX_SESSIONS_TOTAL": "6", "RELAY_MAX_SESSIONS_PER_USER": "2"})
    users = [ann, ann, bob, None, bob, None]
    ids = [uuid.uuid4() for _ in users]
    outcomes = registry.register_sessions(
        sessions=[(i, {"user": u}, config) for i, u in zip(ids, users, strict=True)]
    )
    # 2 open before; ann's first is the 3rd open row, her 2nd is over her limit of 2; bob,
    # anonymous and bob fill rows 4..6; the last anonymous one is over the total of 6.
    assert [o is None for o in outcomes] == [True, False, True, True, True, False]
    assert "2 open session(s)" in outcomes[1] and "limit of 6" in outcomes[5]
    rows = {r.id: r for r in RealtimeSession.objects.filter(id__in=ids)}
    assert rows[ids[1]].status == rows[ids[5]].status == RealtimeSession.Status.CLOSED
    assert rows[ids[1]].close_reason == "too_many_sessions"
    assert RealtimeSession.objects.live().count() == 6


@pytest.mark.django_db(transaction=True)
async def test_presence_writes_of_many_sessions_share_a_call_and_fail_one_by_one():
    """Writes that arrive together go in one database call; one that fails fails alone."""
    from django.db import DatabaseError

    rows = [await sync_to_async(make_row)() for _ in range(3)]
    calls = []

    def live(*, session_id):
        calls.append(session_id)
        RealtimeSession.objects.filter(id=session_id).update(status=Status.LIVE)

    def broken(*, session_id):
        raise DatabaseError("disk full")

    writes = batching.PresenceWrites()
    outcomes = await asyncio.gather(
        writes.write(live, session_id=rows[0].id),
        writes.write(broken, session_id=rows[1].id),
        writes.write(live, session_id=rows[2].id),
        return_exceptions=True,
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], DatabaseError)
    # One transaction for the three, rolled back by the failure, then each on its own.
    assert calls == [rows[0].id, rows[0].id, rows[2].id]
    statuses = await sync_to_async(
        lambda: {r.id: r.status for r in RealtimeSession.objects.all()}
    )()
    assert statuses == {rows[0].id: Status.LIVE, rows[1].id: Status.CONNECTING,
                        rows[2].id: Status.LIVE}  # fmt: skip


@pytest.mark.django_db(transaction=True)
async def test_sessions_going_live_together_are_one_update_and_keep_their_order():
    """A storm's sessions go live in one statement; a close written between two of them
    stays between them (the second session's row is closed, not brought back to life)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    rows = [await sync_to_async(make_row)() for _ in range(4)]
    zero = {"audio_ms_in": 0}
    writes = batching.PresenceWrites()
    close = {"session_id": rows[2].id, "code": 1000, "reason": "x", "ended_by": "client",
             "counters": zero}  # fmt: skip

    def run() -> list[str]:
        items = [
            (registry.session_live, {"session_id": rows[0].id, "counters": zero}),
            (registry.session_live, {"session_id": rows[1].id, "counters": zero}),
            (registry.session_close, close),
            (registry.session_live, {"session_id": rows[2].id, "counters": zero}),
            (registry.session_live, {"session_id": rows[3].id, "counters": {"audio_ms_in": 9}}),
        ]
        with CaptureQueriesContext(connection) as queries:
            assert writes._execute(items) == [None] * 5
        return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]

    updates = await sync_to_async(run)()
    assert len(updates) == 4  # rows 0+1 together, the close, row 2, row 3 (other counters)
    got = await sync_to_async(
        lambda: {r.id: (r.status, r.audio_ms_in) for r in RealtimeSession.objects.all()}
    )()
    assert got == {rows[0].id: (Status.LIVE, 0), rows[1].id: (Status.LIVE, 0),
                   rows[2].id: (Status.CLOSED, 0), rows[3].id: (Status.LIVE, 9)}  # fmt: skip


@pytest.mark.django_db(transaction=True)
async def test_writes_submitted_from_a_context_inside_a_database_call_still_run():
    """A SIGTERM's handler runs wherever the main thread was, and Twisted schedules the
    shutdown (the drain, its closes and detaches) in that context: when it was inside a
    database call, asgiref's single-thread guard is set there ("would deadlock"). The batch
    and the drain run in their own contexts, so the rows are still written."""
    from asgiref.sync import SyncToAsync

    from realtime.ops import drain

    row = await sync_to_async(make_row)()
    writes = batching.PresenceWrites()

    async def detach_then_close() -> None:
        SyncToAsync.deadlock_context.set(True)  # as inside SyncToAsync.__call__
        await writes.write(registry.session_detach, session_id=row.id, counters={}, channel_name="")

    await asyncio.create_task(detach_then_close())
    assert (await sync_to_async(RealtimeSession.objects.get)(id=row.id)).status == Status.DETACHED

    drained = []

    async def the_drain() -> None:
        drained.append(SyncToAsync.deadlock_context.get(False))

    async def signal_came_mid_call() -> None:
        SyncToAsync.deadlock_context.set(True)
        await drain.in_own_context(drain.shutdown(the_drain))

    was_done = drain._done.is_set()
    try:
        await asyncio.create_task(signal_came_mid_call())
    finally:
        if not was_done:
            drain._done.clear()  # this process's drain is still to come for other tests
    assert drained == [False]
