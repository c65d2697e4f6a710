"""Conversations outlive the upstream session: renewal on a timer, recovery from failures, the
conversation given to the new session (the simulator's recall tells whether it got there)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from realtime.kernel import endings
from realtime.kernel.config import load_config
from realtime.kernel.endings import SessionEnded
from realtime.models import RealtimeSession
from realtime.session import renewal_watch
from realtime.session.renewal import Renewal
from realtime_simulator import Faults, Simulator
from tests.relay.conftest import Client, configure, relay_tasks, wav_pcm

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]

APPEND = {"realtime": "input_audio_buffer.append", "live": "session.input_audio.append"}
RECALL = 'Earlier you said: "my name is Ada"'


async def ask(client: Client, text: str) -> tuple[str, dict]:
    """Type ``text``; the answer's text and its response_done."""
    seen = len(client.of("text_delta"))
    await client.send_json({"type": "user_message", "text": text})
    done = await client.until(action="response_done", timeout=15)
    return "".join(d["delta"] for d in client.of("text_delta")[seen:]), done


async def row(client: Client) -> RealtimeSession:
    info = (await client.until_seen(action="session_info"))["session_id"]
    return await sync_to_async(RealtimeSession.objects.get)(id=info)


def renewals(reason: str) -> float:
    value = REGISTRY.get_sample_value("relay_upstream_renewals_total", {"reason": reason})
    return value or 0.0


async def all_closed(simulator) -> None:
    for record in simulator.connections:
        await asyncio.wait_for(record.closed.wait(), 5)


@pytest.mark.both_apis
async def test_a_conversation_renewed_on_a_timer_keeps_its_recall(simulator, caplog):
    caplog.set_level("INFO", "realtime.session")
    configure(upstream_max_seconds=1)
    before = renewals("max_age")
    client = Client()
    await client.connect()
    answer, _ = await ask(client, "my name is Ada")
    assert "my name is Ada" in answer
    renewed = await client.until(action="upstream_renewed", timeout=20)
    assert renewed == {
        "type": "control",
        "action": "upstream_renewed",
        "reason": "max_age",
        "upstream": 2,
    }
    answer, done = await ask(client, "what did I say")
    assert answer.startswith(RECALL)
    assert done["status"] == "completed"
    # Ids the relay makes up (GPT-Live) never repeat across upstream sessions.
    answers = [m["id"] for m in client.of("control", "response_done")]
    items = [m["item_id"] for m in client.of("control", "audio_start")]
    assert len(set(answers)) == len(answers) == 2 and len(set(items)) == len(items) == 2
    # One session for the client: one greeting, one session_info, no error, the same row.
    assert len(client.of("control", "connected")) == len(client.of("control", "session_info")) == 1
    assert client.of("error") == []
    await client.close()
    session = await row(client)
    assert session.upstream_renewals >= 1 and session.upstream_recoveries == 0
    assert session.responses == 2 and session.text_messages == 2
    spans = session.upstreams
    assert len(spans) == session.upstream_renewals + 1
    assert [s["n"] for s in spans] == list(range(1, len(spans) + 1))
    assert all(s["ended"] == "max_age" for s in spans[:-1])
    assert spans[-1]["ended"] == "client_closed" and spans[0]["id"] != spans[1]["id"]
    # The old upstream sessions were closed by the relay; nothing is left running.
    await all_closed(simulator)
    assert all(r.closed_by in ("client", "server") for r in simulator.connections)
    assert relay_tasks() == []
    assert renewals("max_age") - before == session.upstream_renewals
    logged = [r for r in caplog.records if "upstream renewed (max_age)" in r.getMessage()]
    assert len(logged) == session.upstream_renewals


@pytest.mark.both_apis
async def test_an_upstream_dropped_mid_answer_is_recovered_and_recall_works(
    simulator, upstream_api
):
    simulator.next_faults(Faults(close_mid_response_n=2))
    simulator.next_faults(Faults(first_event_delay_ms=300))  # the new session takes a while
    before = renewals("upstream_closed")
    client = Client()
    await client.connect()
    await ask(client, "my name is Ada")
    _, cut = await ask(client, "tell me more")
    assert (cut["status"], cut["reason"]) == ("failed", "upstream_closed")
    # Audio the user sends while the relay switches is held, then given to the new session.
    pcm = wav_pcm("hello_24k.wav") + bytes(48000)  # and a second of silence: the turn ends
    await client.send_audio(pcm)
    renewed = await client.until(action="upstream_renewed")
    assert renewed["reason"] == "upstream_closed"
    await client.until(action="response_done", timeout=15)  # the answer to the audio
    answer, _ = await ask(client, "what did I say")
    assert answer.startswith(RECALL + ', then "tell me more"')
    assert client.of("error") == []
    second = simulator.connections[1]
    appended = sum(e["audio_bytes"] for e in second.received if e["type"] == APPEND[upstream_api])
    assert appended >= len(pcm)
    await client.close()
    session = await row(client)
    assert (session.upstream_recoveries, session.upstream_renewals) == (1, 0)
    assert [s["ended"] for s in session.upstreams] == ["upstream_closed", "client_closed"]
    assert renewals("upstream_closed") - before == 1
    await all_closed(simulator)
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_expiry_is_recovered_like_a_drop(simulator):
    configure(upstream_max_seconds=0)  # no timer: the upstream's own expiry comes first
    simulator.next_faults(Faults(expire_after_s=0.5))
    client = Client()
    await client.connect()
    await ask(client, "my name is Ada")
    renewed = await client.until(action="upstream_renewed", timeout=10)
    assert renewed["reason"] == "upstream_session_expired"
    answer, _ = await ask(client, "what did I say")
    assert answer.startswith(RECALL)
    await client.close()
    assert (await row(client)).upstream_recoveries == 1
    assert relay_tasks() == []


@pytest.mark.both_apis
@pytest.mark.parametrize("trigger", ["timer", "failure"])
async def test_a_401_on_the_new_connection_ends_with_upstream_auth_failed(simulator, trigger):
    if trigger == "timer":
        configure(upstream_max_seconds=1)
        simulator.next_faults(Faults())
    else:
        simulator.next_faults(Faults(close_mid_response=True))
    simulator.next_faults(Faults(refuse_status=401))
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "hello"})
    error = await client.until(type="error", timeout=20)
    assert (error["code"], error["fatal"]) == ("upstream_auth_failed", True)
    assert await client.until_closed() == 4011
    assert len(simulator.connections) == 2  # never retried
    await all_closed(simulator)
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_when_every_attempt_fails_the_session_ends_with_the_original_code(simulator):
    configure(upstream_retries=2)
    simulator.next_faults(Faults(close_mid_response=True))
    simulator.next_faults(Faults(refuse_status=503))
    simulator.next_faults(Faults(refuse_status=503))
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "hello"})
    cut = await client.until(action="response_done")
    assert cut["status"] == "failed"
    error = await client.until(type="error", timeout=15)
    assert error["code"] == "upstream_closed"
    assert await client.until_closed() == 4012
    assert [r.status for r in simulator.connections] == [101, 503, 503]
    session = await row(client)
    assert session.close_reason == "upstream_closed" and session.upstream_recoveries == 0
    assert relay_tasks() == []


@pytest.mark.parametrize(
    "failure",
    [
        SessionEnded(endings.UPSTREAM_CLOSED, "session_closed_content"),  # a safety filter
        SessionEnded(endings.UPSTREAM_AUTH_FAILED),
        SessionEnded(endings.UPSTREAM_SESSION_REJECTED),
        SessionEnded(endings.BUDGET_EXHAUSTED),
        SessionEnded(endings.TOO_MANY_SESSIONS),
        SessionEnded(endings.SESSION_TIMEOUT),
    ],
    ids=lambda failure: failure.upstream_code or failure.ending.code,
)
async def test_what_is_never_recovered(failure):
    parts = {
        name: SimpleNamespace()
        for name in ("clients", "watch", "reader", "outbox", "history", "turns", "counters")
    }
    renewal = Renewal(
        session_id="s",
        config=load_config({}),
        switch=lambda adapter: None,
        events=SimpleNamespace(billed=None),
        port=None,
        presence=None,
        spawn=None,
        live=lambda: True,
        **parts,
    )  # type: ignore[arg-type]
    assert await renewal.recover(failure) is False


def test_the_admin_session_page_lists_the_upstream_sessions(admin_client):
    from django.urls import reverse

    spans = [
        {"n": 1, "id": "sess_a", "started_at": "2026-12-01T10:00:00+00:00",
         "ended_at": "2026-12-01T10:55:00+00:00", "ended": "max_age"},
        {"n": 2, "id": "sess_b", "started_at": "2026-12-01T10:55:00+00:00",
         "ended_at": "2026-12-01T11:00:00+00:00", "ended": "upstream_closed"},
        {"n": 3, "id": "sess_c", "started_at": "2026-12-01T11:00:01+00:00",
         "ended_at": "2026-12-01T11:20:00+00:00", "ended": "client_closed"},
    ]  # fmt: skip
    session = RealtimeSession.objects.create(
        provider="simulator", model="gpt-realtime", worker_id="w:1", status="closed",
        upstreams=spans, upstream_renewals=1, upstream_recoveries=1, close_reason="client_closed",
    )  # fmt: skip
    page = admin_client.get(reverse("admin:realtime_realtimesession_change", args=[session.id]))
    html = page.content.decode()
    assert "3 upstream sessions (1 renewed on the timer, 1 recovered)" in html
    assert "renewed: RELAY_UPSTREAM_MAX_SECONDS reached" in html
    assert "recovered: the service closed it" in html
    assert "sess_b" in html and "client_closed" in html
    plain = RealtimeSession.objects.create(
        provider="simulator", model="gpt-realtime", worker_id="w:1", close_reason="idle_timeout"
    )
    page = admin_client.get(reverse("admin:realtime_realtimesession_change", args=[plain.id]))
    assert "1 (never renewed, ended: idle_timeout)" in page.content.decode()


@pytest.mark.both_apis
async def test_the_timer_comes_before_the_expiry_the_upstream_announces(upstream_api):
    """No RELAY_UPSTREAM_MAX_SECONDS: the session's own expires_at sets the renewal."""
    async with Simulator(pace="fast", session_max_seconds=4) as short:
        configure(endpoint=short.base_url)
        client = Client()
        await client.connect()
        renewed = await client.until(action="upstream_renewed", timeout=15)
        assert renewed["reason"] == "max_age"  # before the expiry, not after it
        assert client.of("error") == []
        await client.close()
    assert relay_tasks() == []


async def test_a_renewal_that_finds_no_quiet_moment_cuts_the_answer(simulator, monkeypatch):
    monkeypatch.setattr(renewal_watch, "QUIET_DEADLINE_S", 0.5)
    configure(upstream_max_seconds=1, stall_timeout_s=60)
    simulator.next_faults(Faults(stall_after="response.created"))  # an answer that never ends
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "my name is Ada"})
    started = await client.until(action="response_started")
    cut = await client.until(action="response_done", timeout=10)
    assert (cut["id"], cut["status"], cut["reason"]) == (
        started["id"],
        "cancelled",
        "upstream_renewal",
    )
    await client.until(action="upstream_renewed")
    answer, _ = await ask(client, "what did I say")
    assert answer.startswith(RECALL)
    await client.close()
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_a_stalled_upstream_is_recovered_and_a_waiting_message_answered(
    simulator, upstream_api
):
    configure(stall_timeout_s=0.5)
    ready = {"realtime": "session.updated", "live": "session.started"}
    simulator.next_faults(Faults(stall_after=ready[upstream_api]))  # says nothing more
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "my name is Ada"})
    renewed = await client.until(action="upstream_renewed", timeout=10)
    assert renewed["reason"] == "upstream_stalled"
    if upstream_api == "realtime":  # the message that was waiting is answered by the new one
        seen = len(client.of("text_delta"))
        await client.until(action="response_done")
        answer = "".join(d["delta"] for d in client.of("text_delta")[seen:])
        assert "You said: my name is Ada" in answer
    answer, _ = await ask(client, "what did I say")
    assert answer.startswith(RECALL)
    await client.close()
    assert (await row(client)).upstream_recoveries == 1
    assert relay_tasks() == []
