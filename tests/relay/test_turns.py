"""Turn-taking as a user meets it: typing over an answer, manual turns, live transcripts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from realtime.kernel.config import load_config
from realtime_simulator import Simulator
from tests.relay.conftest import Client, configure, relay_tasks, use_config, wav_pcm

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relay_config")]

SILENCE_1S = bytes(48000)


@pytest.fixture
async def paced() -> AsyncIterator[Simulator]:
    """A simulator that answers at its real-time pace: answers take seconds to stream."""
    sim = Simulator(pace="realtime")
    await sim.start(host="127.0.0.1", port=0)
    use_config(load_config({"REALTIME_SIMULATOR_URL": sim.base_url}))
    try:
        yield sim
    finally:
        await sim.stop()


async def test_a_message_typed_during_an_answer_cuts_it_and_is_answered(paced):
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "tell me a long story " * 5})
    first = await client.until(action="audio_start")
    await client.send_json({"type": "user_message", "text": "actually, what is two plus two"})
    cut = await client.until(action="response_done")
    assert cut["status"] == "cancelled"
    answer = await client.until(action="response_done", timeout=20)
    assert answer["status"] == "completed"
    second_answer = [
        d["delta"] for d in client.of("text_delta") if not d["id"].startswith(first["item_id"])
    ]
    assert "what is two plus two" in "".join(second_answer)
    assert client.of("error") == []  # no conversation_already_has_active_response
    record = paced.connections[-1]
    kinds = [e["type"] for e in record.received if e["type"] != "input_audio_buffer.append"]
    # The cut answer is cancelled and cut at what was heard; the new answer is asked for only
    # once the cancelled one is done (never while it is active).
    assert kinds.index("response.cancel") < kinds.index("conversation.item.create", 2)
    assert kinds.count("response.create") == 2
    assert any(k in kinds for k in ("conversation.item.truncate", "conversation.item.delete"))
    second_create = [i for i, k in enumerate(kinds) if k == "response.create"][1]
    done_events = [e for e in record.sent if e["type"] == "response.done"]
    assert done_events[0]["response"]["status"] == "cancelled"
    await client.close()
    assert second_create > kinds.index("response.cancel")
    assert relay_tasks() == []


async def test_commit_ends_a_manual_turn_and_asks_for_an_answer(simulator):
    configure(turn_detection=None)
    client = Client()
    await client.connect()
    await client.send_json({"type": "commit"})
    empty = await client.until(type="error")
    assert (empty["code"], empty["fatal"]) == ("commit_empty", False)
    await client.send_audio(wav_pcm("hello_24k.wav"))
    await client.send_json({"type": "commit"})
    transcription = await client.until(type="transcription")
    assert transcription["text"]
    done = await client.until(action="response_done")
    assert done["status"] == "completed" and len(client.audio) > 0
    assert client.of("control", "speech_started") == []  # no VAD: the client ended the turn
    received = [e["type"] for e in simulator.connections[-1].received]
    assert received.count("input_audio_buffer.commit") == 1
    assert received.index("input_audio_buffer.commit") < received.index("response.create")
    await client.close()


async def test_commit_is_refused_while_turn_detection_is_on(simulator):
    client = Client()
    await client.connect()
    await client.send_audio(wav_pcm("hello_24k.wav")[:9600])
    await client.send_json({"type": "commit"})
    error = await client.until(type="error")
    assert error["code"] == "commit_unavailable" and "RELAY_TURN_DETECTION" in error["message"]
    assert "input_audio_buffer.commit" not in [
        e["type"] for e in simulator.connections[-1].received
    ]
    await client.close()


async def test_the_user_transcript_streams_before_the_final_transcription(simulator):
    client = Client()
    await client.connect()
    await client.send_audio(wav_pcm("hello_24k.wav") + SILENCE_1S)
    final = await client.until(type="transcription")
    deltas = client.of("transcription_delta")
    assert deltas and all(d["id"] == final["id"] for d in deltas)
    assert "".join(d["delta"] for d in deltas) == final["text"]
    await client.close()


async def test_session_info_names_the_api(simulator):
    client = Client()
    await client.connect()
    info = await client.until(action="session_info")
    assert info["api"] == "realtime" and info["provider"].startswith("Simulator")
    assert info["turn_detection"] == "server_vad"
    await client.close()


async def test_text_only_sessions_answer_in_text(simulator):
    use_config(
        load_config(
            {"REALTIME_SIMULATOR_URL": simulator.base_url, "RELAY_OUTPUT_MODALITIES": "text"}
        )
    )
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "just text please"})
    await client.until(action="response_done")
    assert "just text please" in "".join(d["delta"] for d in client.of("text_delta"))
    assert client.audio == b"" and client.of("control", "audio_start") == []
    await client.close()


async def test_a_silent_user_is_prompted_after_the_idle_timeout(simulator):
    use_config(
        load_config(
            {"REALTIME_SIMULATOR_URL": simulator.base_url, "RELAY_VAD_IDLE_TIMEOUT_MS": "1000"}
        )
    )
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "hi"})
    await client.until(action="response_done")
    await client.until(action="input_timeout", timeout=10)
    prompt = await client.until(action="response_done", timeout=10)
    assert prompt["status"] == "completed"
    await client.close()


async def test_session_settings_reach_the_upstream_and_are_accepted(simulator):
    env = {
        "REALTIME_SIMULATOR_URL": simulator.base_url,
        "RELAY_NOISE_REDUCTION": "far",
        "RELAY_TRUNCATION": "0.5",
        "RELAY_PROMPT_ID": "pmpt_123",
        "RELAY_PROMPT_VERSION": "2",
        "RELAY_TRANSCRIPTION_LANGUAGE": "fr",
        "RELAY_TRANSCRIPTION_PROMPT": "names of French cities",
        "RELAY_TURN_DETECTION": "semantic_vad",
        "RELAY_VAD_EAGERNESS": "high",
    }
    use_config(load_config(env))
    client = Client()
    await client.connect()  # the greeting comes after session.updated: the settings held
    record = simulator.connections[-1]
    update = next(e for e in record.received if e["type"] == "session.update")["session"]
    audio_in = update["audio"]["input"]
    assert audio_in["noise_reduction"] == {"type": "far_field"}
    assert audio_in["transcription"] == {
        "model": "whisper-1",
        "language": "fr",
        "prompt": "names of French cities",
    }
    assert audio_in["turn_detection"]["eagerness"] == "high"
    assert update["truncation"] == {"type": "retention_ratio", "retention_ratio": 0.5}
    assert update["prompt"] == {"id": "pmpt_123", "version": "2"}
    updated = next(e for e in record.sent if e["type"] == "session.updated")["session"]
    assert updated["audio"]["input"]["noise_reduction"]["type"] == "far_field"
    assert updated["prompt"]["id"] == "pmpt_123"
    await client.close()
