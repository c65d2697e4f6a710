"""Sessions through a real daphne on a real socket, on the fast path and on the plain path.

The in-process consumer tests (tests/relay) talk to the consumer through Channels'
``WebsocketCommunicator``, which never runs ``compat/daphne_fastpath.py``: audio frames taken
from daphne's protocol straight into the session, replies written as frames of the relay's
own, eager socket writes. Here a subset of those tests — a text turn, audio in and audio
out, frames sent before the session is ready, barge-in, interrupt, close codes — runs on
three edges, with the same assertions:

- ``asgi``: the communicator (the in-process reference);
- ``daphne``: ``manage.py serve`` in a subprocess, every patch on (the fast path);
- ``daphne-changed``: the same, but with a daphne whose ``onMessage`` does more than the fast
  path copies (it notes the client's liveness in a new attribute): its patch logs one
  warning naming daphne and its version, stays off, and the plain ASGI path serves the
  same sessions.

The upstream is one simulator on a thread of this process, so tests can read what reached it
(``served.py``; the fixtures: ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import os

import pytest

from realtime_simulator import Faults
from tests.compat.daphne.served import DAPHNE_LIMIT, SILENCE_1S, Edge
from tests.relay.conftest import wav_pcm

# slow: `manage.py serve` processes (one per daphne variant and API family)
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


async def test_a_text_turn_streams_text_and_audio(edge):
    client = edge.client()
    greeting = await client.connect()
    assert greeting["greeting"] == "You are now connected to the realtime relay."
    info = await client.until(action="session_info")
    assert info["provider"] == "Simulator (gpt-realtime)"
    await client.send_json({"type": "user_message", "text": "hello there"})
    done = await client.until(action="text_done")
    deltas = client.of("text_delta")
    assert deltas and all(d["id"] == done["id"] for d in deltas)
    assert "You said: hello there." in "".join(d["delta"] for d in deltas)
    assert (await client.until(action="response_done"))["status"] == "completed"
    assert len(client.audio) > 0 and len(client.audio) % 2 == 0
    await client.close()
    await edge.nothing_left()


@pytest.mark.parametrize(
    ("edge_name", "api"),
    [("asgi", "realtime"), ("daphne", "realtime"), ("daphne", "live"),
     ("daphne-changed", "realtime")],
)  # fmt: skip
async def test_audio_in_gives_speech_started_a_transcription_and_audio_out(
    upstream, relays, edge_name, api
):
    edge = Edge(edge_name, upstream, relays, api)
    client = edge.client()
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
    await edge.nothing_left()


async def test_audio_sent_before_the_session_is_ready_is_neither_lost_nor_reordered(edge):
    """Frames queued on the ASGI path while the session connects, then frames the fast path
    takes: every byte reaches the upstream, in order, coalesced into ~20 ms appends."""
    edge.upstream.next_faults(Faults(first_event_delay_ms=300))
    client = edge.client()
    await client.connect(greeting=False)
    pcm = bytes(range(256)) * 150  # 38,400 bytes in 150 browser-sized frames
    await client.send_audio(pcm, frame_bytes=256)  # all before the session is ready
    await client.until(action="connected")
    await client.send_audio(pcm, frame_bytes=255)  # odd-sized frames after it
    total = 2 * len(pcm) - (2 * len(pcm)) % 2
    appends = await edge.upstream.until_appended(total, edge.api)
    assert sum(e["audio_bytes"] for e in appends) == total
    assert all(e["audio_bytes"] % 2 == 0 for e in appends)
    assert len(appends) <= (2 * len(pcm)) // 960 + 2  # ~20 ms per append, not per frame
    await client.close()
    await edge.nothing_left()


async def test_audio_makes_the_round_trip_byte_for_byte_in_order(edge):
    """Through an upstream that sends each append straight back: what the client hears is
    exactly what it sent, frames queued before the session was ready included — the fast
    path in (daphne's protocol → session) and out (frames written by the relay)."""
    edge.upstream.echo(True)
    edge.upstream.next_faults(Faults(first_event_delay_ms=300))
    client = edge.client()
    await client.connect(greeting=False)
    sent = os.urandom(2 * 24000)  # one second of noise: any loss or reordering shows
    await client.send_audio(sent[:24000], frame_bytes=321)  # before the session is ready
    await client.until(action="connected")
    await client.send_audio(sent[24000:], frame_bytes=960)
    async with asyncio.timeout(10):
        while len(client.audio) < len(sent):
            await client.next()
    assert bytes(client.audio) == sent
    await client.close()
    await edge.nothing_left()


async def test_barge_in_during_a_reply_stops_it_and_truncates_to_what_was_sent(edge):
    edge.upstream.pace("realtime")
    client = edge.client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "tell me a long story " * 5})
    await client.until(action="audio_start")
    await client.send_audio(wav_pcm("hello_24k.wav")[:48000])  # the user talks over it
    await client.until(action="speech_started")
    done = await client.until(action="response_done")
    truncate = await edge.upstream.wait_for("conversation.item.truncate")
    assert 0 < truncate["audio_end_ms"] <= len(client.audio) // 48
    assert done["status"] in ("cancelled", "completed")
    await client.close()
    await edge.nothing_left()


async def test_interrupt_cancels_the_answer(edge):
    edge.upstream.pace("realtime")
    client = edge.client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "a long answer please " * 5})
    start = await client.until(action="audio_start")
    await client.send_json({"type": "interrupt", "item_id": start["item_id"], "played_ms": 10})
    done = await client.until(action="response_done")
    assert done["status"] == "cancelled" and done["reason"] == "client_cancelled"
    assert (await edge.upstream.wait_for("conversation.item.truncate"))["audio_end_ms"] == 10
    await client.close()
    await edge.nothing_left()


@pytest.mark.parametrize(
    ("case", "code", "close"),
    [
        ("binary frame over the relay's limit", "frame_too_large", 1009),
        ("binary frame over daphne's limit", "frame_too_large", 1009),
        ("origin not allowed", "origin_not_allowed", 1008),
        ("upstream refuses the key", "upstream_auth_failed", 4011),
    ],
)
async def test_endings_reach_the_client_with_their_close_code(edge, case, code, close):
    origin = "http://evil.example" if case == "origin not allowed" else None
    if case == "upstream refuses the key":
        edge.upstream.next_faults(Faults(refuse_status=401))
    client = edge.client(origin=origin)
    await client.connect(greeting=case.startswith("binary"))
    if case == "binary frame over the relay's limit":
        await client.send_bytes(bytes(5000))
    elif case == "binary frame over daphne's limit":
        await client.send_bytes(bytes(DAPHNE_LIMIT + 5000))
    error = await client.until(type="error")
    assert error["code"] == code and error["fatal"] is True and error["message"]
    assert await client.until_closed() == close
    if case != "origin not allowed":  # refused before any upstream connect
        await edge.nothing_left()


async def test_a_client_closing_normally_closes_its_upstream(edge):
    client = edge.client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "a long answer " * 10})
    await client.until(action="audio_start")
    await client.close()
    record = await edge.upstream.closed()
    assert record.closed_by == "client"
    await edge.nothing_left()
