"""Per-session and cross-session limits, each with its error code and close code."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from realtime.edge.access import issue_ticket
from realtime.kernel.config import ConfigError, load_config
from realtime.models import ConversationEntry, RealtimeSession
from tests.access.test_access import Peer
from tests.relay.conftest import Client, configure, relay_tasks

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]


async def test_the_total_session_limit_refuses_the_next_one_with_4003(settings, simulator):
    configure(max_sessions_total=2)
    first, second = Client(), Client()
    await first.connect()
    await second.connect()
    third = Client()
    await third.connect(greeting=False)
    error = await third.until(type="error")
    assert error["code"] == "too_many_sessions" and "2 concurrent" in error["message"]
    assert await third.until_closed() == 4003
    assert len(simulator.connections) == 2  # the refused one never reached the upstream
    row = await sync_to_async(RealtimeSession.objects.order_by("-started_at").first)()
    assert (row.status, row.close_reason, row.close_code) == ("closed", "too_many_sessions", 4003)
    await first.close()
    fourth = Client()
    await fourth.connect()  # a slot is free again
    await asyncio.gather(second.close(), fourth.close())


async def test_the_per_user_limit_counts_that_user_only(settings):
    configure(max_sessions_per_user=1)
    ann, bob = await sync_to_async(
        lambda: [get_user_model().objects.create_user(n) for n in ("ann", "bob")]
    )()

    async def peer_for(user) -> Peer:
        token = await sync_to_async(issue_ticket)(user=user, ttl=30)
        return Peer(f"/realtime?ticket={token}")

    first = await peer_for(ann)
    assert (await first.first_text())["action"] == "connected"
    message, code = await (await peer_for(ann)).refused()
    assert (message["code"], code) == ("too_many_sessions", 4003)
    assert "1 open session" in message["message"]
    other = await peer_for(bob)
    assert (await other.first_text())["action"] == "connected"
    await first.ws.disconnect()
    await other.ws.disconnect()


async def test_a_session_is_warned_then_ended_at_its_maximum_length(settings):
    configure(max_session_seconds=2, session_warning_seconds=1)
    client = Client()
    await client.connect()
    warning = await client.until(action="session_ending", timeout=5)
    assert 0 <= warning["seconds_left"] <= 1
    error = await client.until(type="error", timeout=5)
    assert error["code"] == "session_timeout" and error["fatal"] is True
    assert await client.until_closed() == 4004
    assert relay_tasks() == []


async def test_a_silent_client_is_closed_after_the_idle_timeout(settings):
    configure(idle_timeout_seconds=1)
    busy, silent = Client(), Client()
    await busy.connect()
    await silent.connect()
    for _ in range(12):  # 1.2 s of 20 ms frames keeps `busy` alive
        await busy.send_audio(bytes(960))
        await asyncio.sleep(0.1)
    error = await silent.until(type="error", timeout=5)
    assert error["code"] == "idle_timeout"
    assert await silent.until_closed() == 4005
    await busy.send_json({"type": "user_message", "text": "still here"})
    await busy.until(action="text_done")
    await busy.close()


async def test_user_messages_are_rate_limited_without_closing(settings, simulator):
    configure(max_messages_per_minute=2)
    client = Client()
    await client.connect()
    for text in ("one", "two", "three"):
        await client.send_json({"type": "user_message", "text": text})
    error = await client.until(type="error")
    assert error["code"] == "rate_limited" and error["fatal"] is False
    await client.until_count("response_done", 1)
    created = [
        e for e in simulator.connections[-1].received if e["type"] == "conversation.item.create"
    ]
    assert [e["item"]["content"][0]["text"] for e in created] == ["one", "two"]
    await client.close()


@pytest.mark.parametrize(
    "message",
    [
        {"type": "system_message", "text": "be brief"},
        {"type": "interrupt"},
        {"type": "playback", "item_id": "item_1", "played_ms": 100},
        {"type": "commit"},
    ],
    ids=lambda message: message["type"],
)
async def test_every_other_client_message_is_rate_limited_without_closing(
    settings, simulator, message
):
    """Issue 25, finding 6: before, 3 000 × 4 KB system_messages in 0.5 s were all stored and
    sent upstream; only user_message had a rate."""
    configure(max_control_messages_per_minute=3, client_messages="system_message")
    client = Client()
    await client.connect()
    info = await client.until(action="session_info")
    for _ in range(5):
        await client.send_json(message)
    await client.send_json({"type": "user_message", "text": "still here?"})  # its own rate
    await client.until(action="response_done")
    limited = [e for e in client.of("error") if e["code"] == "rate_limited"]
    assert len(limited) == 2 and not any(e["fatal"] for e in limited)
    assert "3 control messages a minute" in limited[0]["message"]
    await client.close()
    if message["type"] == "system_message":
        received = simulator.connections[-1].received
        system = [e for e in received if e.get("item", {}).get("role") == "system"]
        assert len(system) == 3  # the refused ones never went upstream…
        stored = await sync_to_async(
            lambda: ConversationEntry.objects.filter(
                session_id=info["session_id"], kind="system_message"
            ).count()
        )()
        assert stored == 3  # …nor into the record


def test_the_control_message_rate_is_configured_and_validated():
    assert load_config({}).max_control_messages_per_minute == 60
    env = {"RELAY_MAX_CONTROL_MESSAGES_PER_MINUTE": "0"}
    assert load_config(env).max_control_messages_per_minute == 0  # off
    for bad in ("-1", "many", "10001"):
        with pytest.raises(ConfigError, match="RELAY_MAX_CONTROL_MESSAGES_PER_MINUTE"):
            load_config({"RELAY_MAX_CONTROL_MESSAGES_PER_MINUTE": bad})


async def test_an_exception_inside_the_consumer_ends_with_1011_and_nothing_left(
    monkeypatch, simulator
):
    from realtime.upstream.realtime import RealtimeAdapter

    def broken(self, frame, now):
        raise RuntimeError("boom")

    monkeypatch.setattr(RealtimeAdapter, "translate", broken)
    client = Client()
    await client.connect()  # the greeting does not go through translate()
    await client.send_json({"type": "user_message", "text": "hi"})
    error = await client.until(type="error")
    assert error == {
        "type": "error",
        "code": "internal_error",
        "message": "the relay hit an internal error",
        "fatal": True,
    }
    assert await client.until_closed() == 1011
    await asyncio.wait_for(simulator.connections[-1].closed.wait(), 3)
    assert relay_tasks() == []


async def test_an_exception_in_a_client_frame_handler_ends_with_1011(monkeypatch, simulator):
    from realtime.session.core import RelaySession

    client = Client()
    await client.connect()
    monkeypatch.setattr(RelaySession, "audio", lambda self, data: 1 / 0)
    await client.ws.send_to(bytes_data=b"\x00\x00")
    error = await client.until(type="error")
    assert error["code"] == "internal_error"
    assert await client.until_closed() == 1011
    await asyncio.wait_for(simulator.connections[-1].closed.wait(), 3)
    assert relay_tasks() == []
