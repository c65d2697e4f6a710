"""Conversations outlive the client's socket: resume tokens, detached sessions, hand-over and
drain, in one process (the in-memory resume store). Across workers: tests/multiprocess/
test_resume_workers.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.utils import timezone

from realtime.kernel import endings
from realtime.models import ConversationEntry, RealtimeSession
from realtime.ops import control
from realtime.ops import runtime as relay_runtime
from realtime.ops.reaper import expire_detached
from tests.relay.conftest import Client, configure, relay_tasks
from tests.waiting import eventually_async

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]

RECALL = 'Earlier you said: "my name is Ada"'


async def ask(client: Client, text: str) -> str:
    seen = len(client.of("text_delta"))
    await client.send_json({"type": "user_message", "text": text})
    await client.until(action="response_done", timeout=15)
    return "".join(d["delta"] for d in client.of("text_delta")[seen:])


async def info(client: Client) -> dict:
    return await client.until_seen(action="session_info")


async def drop(client: Client, code: int = 1006) -> None:
    """The client's socket goes away without a clean close (a dropped network: 1006)."""
    await client.ws.send_input({"type": "websocket.disconnect", "code": code})
    await client.ws.wait(timeout=5)


async def row(session_id: str) -> RealtimeSession:
    return await sync_to_async(RealtimeSession.objects.get)(id=session_id)


async def status(session_id: str) -> str:
    return (await row(session_id)).status


async def until_status(session_id: str, wanted: str) -> None:
    async def reached() -> bool:
        return await status(session_id) == wanted

    await eventually_async(reached, what=f"session {session_id} {wanted}")


async def resume(token: str, *, user=None) -> Client:
    client = Client(f"/realtime?resume={token}", user=user)
    await client.connect()
    if not (await info(client))["resumed"]:
        await client.until(type="error")  # resume_unavailable follows session_info
    return client


def store():
    return relay_runtime.current().resume_store


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", password="pw-bob-123")


@pytest.mark.both_apis
async def test_a_dropped_socket_resumes_the_same_session_with_its_conversation(simulator):
    first = Client()
    await first.connect()
    opened = await info(first)
    assert opened["resumed"] is False and opened["resume_token"]
    assert "my name is Ada" in await ask(first, "my name is Ada")
    await drop(first)
    session_id = opened["session_id"]
    await until_status(session_id, "detached")
    assert await store().load(session_id) is not None

    second = await resume(opened["resume_token"])
    again = await info(second)
    assert again["session_id"] == session_id and again["resumed"] is True
    assert again["resume_token"] and again["resume_token"] != opened["resume_token"]
    assert second.of("error") == []
    assert (await ask(second, "what did I say")).startswith(RECALL)
    await second.close()

    session = await row(session_id)
    assert (session.status, session.close_reason) == ("closed", "client_closed")
    assert session.resumes == 1 and session.responses == 2 and session.text_messages == 2
    assert await sync_to_async(RealtimeSession.objects.count)() == 1
    assert await store().load(session_id) is None  # ended for good: nothing kept
    assert relay_tasks() == []
    # Both upstream sessions were closed: the first when the socket was lost.
    assert len(simulator.connections) == 2
    assert all(c.closed.is_set() for c in simulator.connections)


async def test_the_record_goes_on_after_a_resume(simulator):
    configure(store_transcripts=True)
    first = Client()
    await first.connect()
    opened = await info(first)
    await ask(first, "my name is Ada")
    await drop(first)
    await until_status(opened["session_id"], "detached")
    second = await resume(opened["resume_token"])
    await ask(second, "what did I say")
    await second.close()
    kinds = await sync_to_async(
        lambda: list(
            ConversationEntry.objects.filter(session_id=opened["session_id"])
            .order_by("seq")
            .values_list("kind", flat=True)
        )
    )()
    assert kinds.count("detached") == 1 and kinds.count("resumed") == 1
    texts = await sync_to_async(
        lambda: list(
            ConversationEntry.objects.filter(
                session_id=opened["session_id"], kind="detached"
            ).values_list("role", "text")
        )
    )()
    assert texts == [("session", "client_detached")]
    assert kinds.index("detached") < kinds.index("resumed") < kinds.index("ended")
    assert kinds.count("typed") == 2


async def test_a_clean_close_ends_the_session_at_once(simulator):
    first = Client()
    await first.connect()
    opened = await info(first)
    await first.close()  # 1000
    await until_status(opened["session_id"], "closed")
    second = await resume(opened["resume_token"])
    fresh = await info(second)
    assert fresh["resumed"] is False and fresh["session_id"] != opened["session_id"]
    [error] = second.of("error")
    assert error["code"] == "resume_unavailable" and "gone" in error["message"]
    await second.close()


@pytest.mark.parametrize(
    "token, why",
    [
        ("not-a-token", "invalid, expired or already used"),
        ("forged:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "invalid, expired or already used"),
    ],
)
async def test_a_forged_token_gives_a_new_session(simulator, token, why):
    client = await resume(token)
    fresh = await info(client)
    assert fresh["resumed"] is False
    [error] = client.of("error")
    assert (error["code"], error["fatal"]) == ("resume_unavailable", False)
    assert why in error["message"]
    assert (await ask(client, "hello")) != ""  # the new session works
    await client.close()


async def test_a_token_is_single_use(simulator):
    first = Client()
    await first.connect()
    opened = await info(first)
    await drop(first)
    await until_status(opened["session_id"], "detached")
    second = await resume(opened["resume_token"])
    assert (await info(second))["resumed"] is True
    await drop(second)
    await until_status(opened["session_id"], "detached")
    third = await resume(opened["resume_token"])  # the first token again: spent
    assert (await info(third))["resumed"] is False
    assert "already used" in third.of("error")[0]["message"]
    await third.close()


async def test_a_token_expires_with_the_resume_window(simulator):
    configure(resume_seconds=1)
    first = Client()
    await first.connect()
    opened = await info(first)
    await drop(first)
    await until_status(opened["session_id"], "detached")
    later = timezone.now() + timedelta(seconds=2)  # the window has passed
    closed = await sync_to_async(expire_detached)(resume_seconds=1, now=later)
    assert closed == 1
    session = await row(opened["session_id"])
    assert (session.status, session.close_reason) == ("closed", "resume_expired")
    second = await resume(opened["resume_token"])
    assert (await info(second))["resumed"] is False
    assert second.of("error")[0]["code"] == "resume_unavailable"
    await second.close()


async def test_another_users_token_never_opens_the_session(simulator, alice, bob):
    first = Client(user=alice)
    await first.connect()
    opened = await info(first)
    await ask(first, "my name is Ada")
    await drop(first)
    await until_status(opened["session_id"], "detached")
    for intruder in (bob, None):  # another user, and an anonymous client
        other = await resume(opened["resume_token"], user=intruder)
        fresh = await info(other)
        assert fresh["resumed"] is False and fresh["session_id"] != opened["session_id"]
        assert "another user" in other.of("error")[0]["message"]
        assert not (await ask(other, "what did I say")).startswith(RECALL)
        await other.close()
    # Its owner still can: presenting it elsewhere did not spend it.
    mine = await resume(opened["resume_token"], user=alice)
    assert (await info(mine))["session_id"] == opened["session_id"]
    assert (await ask(mine, "what did I say")).startswith(RECALL)
    await mine.close()


async def test_an_administrator_can_terminate_a_detached_session(simulator, alice):
    first = Client(user=alice)
    await first.connect()
    opened = await info(first)
    await drop(first)
    await until_status(opened["session_id"], "detached")
    session = await row(opened["session_id"])
    assert await sync_to_async(control.terminate_sessions)([session], by="admin") == 0
    session = await row(opened["session_id"])
    assert (session.status, session.close_reason) == ("closed", "terminated")
    second = await resume(opened["resume_token"], user=alice)
    assert (await info(second))["resumed"] is False
    assert "administrator" in second.of("error")[0]["message"]
    await second.close()


async def test_a_detached_session_holds_its_users_slot(simulator, alice):
    configure(max_sessions_per_user=1)
    first = Client(user=alice)
    await first.connect()
    opened = await info(first)
    await drop(first)
    await until_status(opened["session_id"], "detached")
    other = Client(user=alice)
    await other.connect(greeting=False)
    refused = await other.until(type="error")
    assert refused["code"] == "too_many_sessions"
    assert await other.until_closed() == endings.TOO_MANY_SESSIONS.close_code
    back = await resume(opened["resume_token"], user=alice)  # its own slot
    assert (await info(back))["resumed"] is True
    await back.close()


@pytest.mark.both_apis
async def test_a_resume_while_the_old_socket_still_looks_open_takes_the_session_over(
    simulator,
):
    old = Client()
    await old.connect()
    opened = await info(old)
    await ask(old, "my name is Ada")
    new = await resume(opened["resume_token"])  # the old socket never noticed anything
    assert (await info(new))["session_id"] == opened["session_id"]
    assert (await info(new))["resumed"] is True
    told = await old.until(type="error")
    assert told["code"] == "session_resumed_elsewhere"
    assert await old.until_closed() == 4015
    assert (await ask(new, "what did I say")).startswith(RECALL)
    await new.close()
    session = await row(opened["session_id"])
    assert (session.status, session.close_reason, session.resumes) == ("closed", "client_closed", 1)
    assert relay_tasks() == []


async def test_a_draining_worker_detaches_its_sessions_for_a_resume(simulator):
    client = Client()
    await client.connect()
    opened = await info(client)
    await ask(client, "my name is Ada")
    runtime = relay_runtime.current()
    try:
        await runtime.drain(timeout=5)
    finally:
        runtime.draining = False
    told = await client.until(type="error")
    assert told["code"] == "server_restarting"
    assert await client.until_closed() == 1012
    assert await status(opened["session_id"]) == "detached"
    back = await resume(opened["resume_token"])
    assert (await info(back))["resumed"] is True
    assert (await ask(back, "what did I say")).startswith(RECALL)
    await back.close()


async def test_without_a_resume_window_a_lost_socket_ends_the_session(simulator):
    configure(resume_seconds=0)
    client = Client()
    await client.connect()
    opened = await info(client)
    assert opened["resume_token"] is None and opened["resumed"] is False
    await drop(client)
    await until_status(opened["session_id"], "closed")
    assert (await row(opened["session_id"])).close_code == 1006
