"""Conversation records: what was said, in order, written with the heartbeat and at close."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from realtime.models import ConversationEntry
from tests.relay.conftest import Client, configure, wav_pcm
from tests.waiting import eventually_async

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relay_config")]


def entries() -> list[tuple[str, str, str]]:
    return [(e.role, e.kind, e.text) for e in ConversationEntry.objects.order_by("session", "seq")]


async def test_typed_spoken_and_tool_turns_are_recorded_in_order_without_audio():
    configure(tools="examples", heartbeat_seconds=0.2)
    client = Client()
    await client.connect()
    await client.send_json(
        {"type": "user_message", "text": "what time is it - use get_current_time"}
    )
    await client.until_count("response_done", 2)
    await client.send_audio(wav_pcm("hello_24k.wav") + bytes(48000))
    await client.until_count("response_done", 3)
    # Written with a heartbeat (0.2 s), while the session is still live.
    live = await eventually_async(sync_to_async(entries))
    assert live[0] == ("user", "typed", "what time is it - use get_current_time")
    await client.close()
    recorded = await sync_to_async(entries)()
    roles = [(role, kind) for role, kind, _ in recorded]
    assert roles == [
        ("user", "typed"),
        ("tool", "call"),
        ("assistant", "answer"),
        ("user", "spoken"),
        ("assistant", "answer"),
        ("session", "ended"),
    ]
    assert "get_current_time function returned" in recorded[2][2]
    assert recorded[1][2] == "get_current_time"
    assert recorded[-1][2] == "client_closed"
    text = " ".join(t for _, _, t in recorded)
    assert len(text) < 2000  # text only: no base64 audio anywhere


async def test_nothing_is_recorded_when_transcripts_are_off():
    configure(store_transcripts=False)
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "hello"})
    await client.until(action="response_done")
    await client.close()
    assert await sync_to_async(entries)() == []
