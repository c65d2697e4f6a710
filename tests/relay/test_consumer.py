"""The consumer against the simulator: turns, barge-in, bad input, faults, isolation."""

from __future__ import annotations

import asyncio
import time

import pytest

from realtime_simulator import Faults
from tests.relay.conftest import Client, configure, relay_tasks, wav_pcm
from tests.waiting import eventually_async

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]

SILENCE_1S = bytes(48000)
# The same browser protocol on both API families; what differs upstream, by family.
READY = {"realtime": "session.updated", "live": "session.started"}
APPEND = {"realtime": "input_audio_buffer.append", "live": "session.input_audio.append"}
MODEL = {"realtime": "gpt-realtime", "live": "gpt-live-1"}
CONFIGURE = {"realtime": "session.update", "live": "session.start"}


@pytest.mark.both_apis
async def test_text_turn_streams_deltas_with_item_ids_then_text_done(upstream_api):
    client = Client()
    greeting = await client.connect()
    assert greeting == {
        "type": "control",
        "action": "connected",
        "greeting": "You are now connected to the realtime relay.",
    }
    info = await client.until(action="session_info")
    assert info["provider"] == f"Simulator ({MODEL[upstream_api]})"
    assert info["api"] == upstream_api
    await client.send_json({"type": "user_message", "text": "hello there"})
    done = await client.until(action="text_done")
    deltas = client.of("text_delta")
    assert deltas and all(d["id"] == done["id"] for d in deltas)
    item_id, _, index = done["id"].rpartition("-")
    assert item_id and index == "0"
    text = "".join(d["delta"] for d in deltas)
    assert "You said: hello there." in text  # the words answered, not the relay's framing
    result = await client.until(action="response_done")
    assert result["status"] == "completed"
    if upstream_api == "realtime":  # GPT-Live bills by duration: no tokens for the voice
        assert result["usage"]["output_tokens"] > 0
    assert len(client.audio) > 0 and len(client.audio) % 2 == 0
    await client.close()


@pytest.mark.both_apis
async def test_audio_turn_gives_speech_started_transcription_and_reply_audio(simulator):
    client = Client()
    await client.connect()
    await client.send_audio(wav_pcm("hello_24k.wav") + SILENCE_1S)
    await client.until(action="speech_started")
    await client.until_seen(type="transcription", action=None)
    await client.until_seen(action="response_done")
    [transcription] = client.of("transcription")
    assert transcription["id"] and transcription["text"]
    assert len(client.audio) > 48000 // 2  # at least half a second of reply audio
    boundary = client.of("control", "audio_start")
    assert boundary and boundary[0]["id"] == f"{boundary[0]['item_id']}-0"
    await client.close()


@pytest.mark.both_apis
async def test_pre_greeting_audio_is_not_lost_and_frames_are_coalesced(simulator, upstream_api):
    simulator.next_faults(Faults(first_event_delay_ms=300))
    client = Client()
    await client.connect(greeting=False)
    pcm = bytes(range(256)) * 150  # 38,400 bytes in 150 browser-sized frames
    await client.send_audio(pcm, frame_bytes=256)  # all before the session is ready
    await client.until(action="connected")
    await client.send_audio(pcm, frame_bytes=255)  # odd-sized frames after it
    record = simulator.connections[-1]

    def appends() -> list[dict]:
        return [e for e in record.received if e["type"] == APPEND[upstream_api]]

    whole = 2 * len(pcm) - (2 * len(pcm)) % 2
    await eventually_async(lambda: sum(e["audio_bytes"] for e in appends()) >= whole)
    appends = appends()
    assert sum(e["audio_bytes"] for e in appends) == whole
    assert all(e["audio_bytes"] % 2 == 0 for e in appends)
    assert len(appends) <= (2 * len(pcm)) // 960 + 2  # ~20 ms per append, not per frame
    await client.close()


async def test_barge_in_during_a_reply_stops_it_and_truncates(simulator):
    configure(playback_report_wait_ms=100)
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "tell me a long story " * 5})
    await client.until(action="audio_start")
    await client.send_audio(wav_pcm("hello_24k.wav")[:48000])  # the user talks over it
    await client.until(action="speech_started")
    done = await client.until(action="response_done")
    record = simulator.connections[-1]
    truncate = await record.wait_for("conversation.item.truncate", timeout=3)
    sent_ms = len(client.audio) // 48
    assert 0 < truncate["audio_end_ms"] <= sent_ms
    assert done["status"] in ("cancelled", "completed")
    await client.close()


async def test_client_playback_report_wins_over_the_estimate(simulator):
    configure(playback_report_wait_ms=2000)
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "tell me a long story " * 5})
    start = await client.until(action="audio_start")
    await client.send_audio(wav_pcm("hello_24k.wav")[:48000])
    await client.until(action="speech_started")
    await client.send_json({"type": "playback", "item_id": start["item_id"], "played_ms": 37})
    truncate = await simulator.connections[-1].wait_for("conversation.item.truncate", timeout=1.5)
    assert truncate["audio_end_ms"] == 37 and truncate["item_id"] == start["item_id"]
    await client.close()


async def test_interrupt_cancels_the_answer(simulator):
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "a long answer please " * 5})
    start = await client.until(action="audio_start")
    await client.send_json({"type": "interrupt", "item_id": start["item_id"], "played_ms": 10})
    done = await client.until(action="response_done")
    assert done["status"] == "cancelled" and done["reason"] == "client_cancelled"
    record = simulator.connections[-1]
    assert (await record.wait_for("conversation.item.truncate"))["audio_end_ms"] == 10
    await client.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ('{"type":"session.update","session":{"instructions":"evil"}}', "unknown_type"),
        ('{"type":"user_message"}', "missing_field"),
        ("\udcff\udcfe", "invalid_utf8"),
        ("[]", "invalid_message"),
    ],
)
@pytest.mark.both_apis
async def test_bad_client_input_is_reported_and_the_session_stays_usable(
    simulator, frame, code, upstream_api
):
    client = Client()
    await client.connect()
    await client.ws.send_to(text_data=frame)
    error = await client.until(type="error")
    assert error["code"] == code and error["fatal"] is False and error["message"]
    await client.send_json({"type": "user_message", "text": "still there?"})
    await client.until(action="text_done")
    received = [e["type"] for e in simulator.connections[-1].received]
    assert received.count(CONFIGURE[upstream_api]) == 1  # nothing of the frame went upstream
    await client.close()


@pytest.mark.both_apis
async def test_an_upstream_error_event_reaches_the_client(simulator, upstream_api):
    simulator.next_faults(
        Faults(inject_error_after=READY[upstream_api], inject_error_code="rate_limit_exceeded")
    )
    client = Client()
    await client.connect()
    error = await client.until(type="error")
    assert error["code"] == "rate_limit_exceeded" and error["fatal"] is False
    await client.send_json({"type": "user_message", "text": "ok"})
    await client.until(action="text_done")
    await client.close()


@pytest.mark.parametrize(
    ("status", "code", "close"),
    [
        (401, "upstream_auth_failed", 4011),
        (500, "upstream_unavailable", 4010),
    ],
)
@pytest.mark.both_apis
async def test_a_refused_handshake_ends_with_an_error_and_close_code(
    simulator, status, code, close
):
    simulator.next_faults(Faults(refuse_status=status))
    client = Client()
    await client.connect(greeting=False)
    error = await client.until(type="error")
    assert error["code"] == code and error["fatal"] is True
    assert str(status) in error["message"]
    assert await client.until_closed() == close
    assert simulator.connections[-1].status == status
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_an_unreachable_upstream_ends_with_4010():
    configure(endpoint="ws://127.0.0.1:9", connect_timeout_s=2)
    client = Client()
    await client.connect(greeting=False)
    error = await client.until(type="error")
    assert error["code"] == "upstream_unavailable"
    assert await client.until_closed() == 4010
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_upstream_closing_mid_response_ends_with_4012_and_nothing_left(simulator):
    """Without recovery (RELAY_UPSTREAM_RETRIES=0; tests/relay/test_renewal.py has it on)."""
    configure(upstream_retries=0)
    simulator.next_faults(Faults(close_mid_response=True))
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "hi"})
    error = await client.until(type="error")
    assert error["code"] == "upstream_closed" and "1011" in error["message"]
    assert await client.until_closed() == 4012
    record = simulator.connections[-1]
    await asyncio.wait_for(record.closed.wait(), 3)
    assert record.close_code == 1011
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_a_stalled_upstream_ends_with_4013(simulator, upstream_api):
    configure(stall_timeout_s=0.5, upstream_retries=0)
    simulator.next_faults(Faults(stall_after=READY[upstream_api]))
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "hi"})
    error = await client.until(type="error")
    assert error["code"] == "upstream_stalled"
    assert await client.until_closed() == 4013
    await asyncio.wait_for(simulator.connections[-1].closed.wait(), 3)
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_an_upstream_that_stalls_mid_answer_ends_with_4013(simulator, upstream_api):
    """The reader is already waiting with an answer in progress when the stall starts."""
    configure(stall_timeout_s=0.5, upstream_retries=0)
    first = {"realtime": "response.created", "live": "session.output_audio.delta"}
    simulator.next_faults(Faults(stall_after=first[upstream_api]))
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "a long answer please"})
    await client.until(action="response_started")
    error = await client.until(type="error", timeout=5)
    assert error["code"] == "upstream_stalled"
    assert await client.until_closed() == 4013
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_upstream_session_expiry_ends_with_4014(simulator):
    configure(upstream_retries=0, upstream_max_seconds=0)
    simulator.next_faults(Faults(expire_after_s=0.3))
    client = Client()
    await client.connect()
    error = await client.until(type="error", timeout=5)
    assert error["code"] == "upstream_session_expired" and error["fatal"] is True
    assert await client.until_closed() == 4014
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_client_leaving_mid_response_closes_the_upstream(simulator, upstream_api):
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "a long answer " * 10})
    await client.until(action="audio_start")
    await client.close()
    record = simulator.connections[-1]
    await asyncio.wait_for(record.closed.wait(), 3)
    if upstream_api == "live":  # ended properly: session.close, then the service closes
        assert record.received[-1]["type"] == "session.close"
    else:
        assert record.closed_by == "client"
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_an_oversized_frame_is_refused_with_1009(simulator):
    configure(max_binary_bytes=4096)
    client = Client()
    await client.connect()
    await client.ws.send_to(bytes_data=bytes(5000))
    error = await client.until(type="error")
    assert error["code"] == "frame_too_large" and error["fatal"] is True
    assert await client.until_closed() == 1009
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_fifty_concurrent_clients_each_get_only_their_own_replies(simulator):
    clients = [Client() for _ in range(50)]
    await asyncio.gather(*(c.connect() for c in clients))

    async def turn(index: int, client: Client) -> str:
        await client.send_json({"type": "user_message", "text": f"token-{index}-marker"})
        await client.until(action="response_done", timeout=30)
        return "".join(d["delta"] for d in client.of("text_delta"))

    started = time.monotonic()
    replies = await asyncio.gather(*(turn(i, c) for i, c in enumerate(clients)))
    for index, reply in enumerate(replies):
        assert f"token-{index}-marker" in reply
        others = [f"token-{j}-marker" for j in range(50) if j != index]
        assert not any(other in reply for other in others)
    assert time.monotonic() - started < 60
    await asyncio.gather(*(c.close() for c in clients))
    await eventually_async(lambda: relay_tasks() == [], what="the sessions' tasks end")


async def test_a_wake_up_asked_for_while_due_events_are_handled_does_not_break_the_reader(
    simulator, monkeypatch
):
    """An adapter's derived events are collected when the reader's timeout fires; a handler
    (or the adapter) asking for another wake-up then must not touch the spent timeout: it
    did, once, under load on GPT-Live (a barge-in during an answer), and the session died."""
    from realtime import upstream as upstream_module
    from realtime.upstream.realtime import RealtimeAdapter

    ticks: list[float] = []

    class WakingAdapter(RealtimeAdapter):
        def deadline(self):
            return 0.0 if len(ticks) < 3 else None  # due now, three times

        def tick(self, now):
            ticks.append(now)
            self.wake()  # e.g. answer_cut() during a barge-in handled from tick
            return []

    real = upstream_module.adapter_for
    monkeypatch.setattr(
        upstream_module, "adapter_for",
        lambda config, clients, tools=None: WakingAdapter(config, clients, tools)
        if config.api == "realtime" else real(config, clients, tools),
    )  # fmt: skip
    monkeypatch.setattr("realtime.session.assembly.adapter_for", upstream_module.adapter_for)
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "still answering?"})
    await client.until(action="text_done")
    assert len(ticks) == 3
    await client.close()
    assert relay_tasks() == []
