"""Everything the relay sends upstream validates against the SDK's client-event models."""

from __future__ import annotations

import pytest

from realtime.kernel.config import load_config
from tests.relay.conftest import Client, configure, use_config, wav_pcm
from tests.simulator.oracle import validate_client_event, validate_server_event

pytestmark = pytest.mark.django_db(transaction=True)


def _wire_form(event: dict) -> dict:
    """The simulator records appends by size; give them back a (valid) base64 payload."""
    if event["type"] == "input_audio_buffer.append":
        return {"type": event["type"], "audio": "AAAA"}
    return event


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_every_upstream_event_of_a_full_session_is_valid(simulator, settings, dialect):
    env = {"REALTIME_SIMULATOR_URL": simulator.base_url}
    if dialect == "beta":
        env = {
            "AZURE_OPENAI_ENDPOINT": simulator.base_url.replace("ws://", "http://"),
            "AZURE_OPENAI_DEPLOYMENT": "dep",
            "AZURE_OPENAI_API_KEY": "k",
            "AZURE_OPENAI_API_VERSION": "2025-04-01-preview",
        }
    use_config(load_config(env))
    configure(playback_report_wait_ms=50)
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "a long answer please " * 4})
    await client.until(action="audio_start")
    await client.send_audio(wav_pcm("hello_24k.wav") + bytes(48000))  # barge-in by voice
    await client.until_count("truncated", 1)
    await client.until_count("response_done", 2)  # the cut answer, then the audio turn's
    assert client.of("transcription")
    await client.send_json({"type": "user_message", "text": "and another"})
    await client.until_count("audio_start", 3)
    await client.send_json({"type": "interrupt"})
    await client.until_count("response_done", 3)
    await client.close()

    record = simulator.connections[-1]
    await record.closed.wait()
    kinds = {e["type"] for e in record.received}
    assert {
        "session.update",
        "conversation.item.create",
        "response.create",
        "input_audio_buffer.append",
        "conversation.item.truncate",
        "response.cancel",
    } <= kinds
    for event in record.received:
        validate_client_event(_wire_form(event), dialect)
    for event in record.sent:
        if "delta_bytes" not in event:
            validate_server_event(event, dialect)
