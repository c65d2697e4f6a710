"""semantic_vad eagerness and the server-VAD idle timeout, simulated on streamed audio."""

from __future__ import annotations

import time
from typing import Any

import pytest

from realtime_simulator import Simulator

from .conftest import Client, assert_all_sent_valid, open_client, types, wav_pcm
from .test_turns import text_item

SILENCE_MS = bytes(48)  # one millisecond of PCM16 24 kHz silence
STORY_SPEECH_END_MS = 2120  # story_request_24k.wav: last voiced 20 ms window ends here


def turn_detection(**td: Any) -> dict[str, Any]:
    audio = {"input": {"turn_detection": td}}
    return {"type": "session.update", "session": {"type": "realtime", "audio": audio}}


async def configure(c: Client, **td: Any) -> None:
    await c.send(turn_detection(**td))
    await c.until("session.updated")


@pytest.mark.parametrize(
    ("eagerness", "wait_ms"), [("high", 500), ("medium", 1000), ("auto", 1000), ("low", 2000)]
)
async def test_eagerness_sets_the_wait_after_speech(
    sim: Simulator, eagerness: str, wait_ms: int
) -> None:
    c = await open_client(sim)
    await configure(c, type="semantic_vad", eagerness=eagerness, create_response=False)
    await c.stream(wav_pcm("story_request_24k.wav") + SILENCE_MS * 3000)
    got = await c.drain(0.3)
    stops = [e for e in got if e["type"] == "input_audio_buffer.speech_stopped"]
    assert [e["audio_end_ms"] for e in stops] == [STORY_SPEECH_END_MS + wait_ms]
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(("eagerness", "turns"), [("high", 2), ("medium", 2), ("low", 1)])
async def test_low_eagerness_waits_through_a_pause(
    sim: Simulator, eagerness: str, turns: int
) -> None:
    c = await open_client(sim)
    await configure(c, type="semantic_vad", eagerness=eagerness, create_response=False)
    story = wav_pcm("story_request_24k.wav")
    await c.stream(story + SILENCE_MS * 1500 + story + SILENCE_MS * 3000)
    got = await c.drain(0.3)
    assert types(got).count("input_audio_buffer.speech_stopped") == turns
    assert types(got).count("input_audio_buffer.committed") == turns


async def text_reply(c: Client) -> list[dict[str, Any]]:
    await c.send(text_item("Hello"))
    await c.send({"type": "response.create"})
    return await c.until("rate_limits.updated")


async def ga_text_session(c: Client, **td: Any) -> None:
    await c.send(
        {"type": "session.update", "session": {
            "type": "realtime", "output_modalities": ["text"],
            "audio": {"input": {"turn_detection": {"type": "server_vad", **td}}}}}
    )  # fmt: skip
    await c.until("session.updated")


async def test_idle_timeout_on_the_input_clock(sim: Simulator) -> None:
    c = await open_client(sim)
    await ga_text_session(c, idle_timeout_ms=1000)
    await text_reply(c)
    await c.stream(SILENCE_MS * 1500)
    got = await c.until("rate_limits.updated")
    t = types(got)
    assert t[:4] == [
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    triggered, committed, added = got[0], got[1], got[2]
    assert (triggered["audio_start_ms"], triggered["audio_end_ms"]) == (0, 1000)
    assert triggered["item_id"] == committed["item_id"] == added["item"]["id"]
    assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    assert "input_audio_buffer.speech_started" not in t
    reply = got[-2]["response"]["output"][0]["content"][0]["text"]
    assert reply == "Are you still there? I have not heard anything for 1 second."
    # the timer runs again after that response: one more idle period, one more prompt
    await c.stream(SILENCE_MS * 1200)
    again = (await c.until("input_audio_buffer.timeout_triggered"))[-1]
    assert again["audio_end_ms"] - again["audio_start_ms"] == 1000
    assert again["audio_start_ms"] >= 1000
    await c.until("response.done")
    assert_all_sent_valid(sim)


async def test_idle_timeout_waits_for_the_reply_audio_to_play(sim: Simulator) -> None:
    c = await open_client(sim)
    await configure(c, type="server_vad", idle_timeout_ms=500)
    got = await text_reply(c)
    played_ms = sum(e["delta_bytes"] for e in sim.connections[-1].sent if "delta_bytes" in e) // 48
    assert played_ms > 1000 and "response.output_audio.delta" in types(got)
    await c.stream(SILENCE_MS * (played_ms + 700))
    triggered = (await c.until("input_audio_buffer.timeout_triggered"))[-1]
    assert (triggered["audio_start_ms"], triggered["audio_end_ms"]) == (
        played_ms,
        played_ms + 500,
    )
    await c.until("response.done")
    assert_all_sent_valid(sim)


async def test_idle_timeout_on_the_wall_clock_without_audio(sim: Simulator) -> None:
    c = await open_client(sim)
    await ga_text_session(c, idle_timeout_ms=300)
    await text_reply(c)
    start = time.monotonic()
    got = await c.until("response.done", wait=5)
    assert time.monotonic() - start >= 0.28
    assert types(got)[:2] == [
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.committed",
    ]
    assert (got[0]["audio_start_ms"], got[0]["audio_end_ms"]) == (0, 0)
    assert_all_sent_valid(sim)


async def test_speech_stops_the_idle_timer(sim: Simulator) -> None:
    c = await open_client(sim)
    await ga_text_session(c, idle_timeout_ms=1000, create_response=False)
    await text_reply(c)
    await c.stream(SILENCE_MS * 600 + wav_pcm("story_request_24k.wav") + SILENCE_MS * 700)
    got = await c.drain(0.2)
    assert types(got)[:2] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
    ]
    assert "input_audio_buffer.timeout_triggered" not in types(got)
    # without a response the timer restarts when the user's turn ends
    stopped = got[1]["audio_end_ms"]
    await c.stream(SILENCE_MS * 1100)
    triggered = (await c.until("input_audio_buffer.timeout_triggered"))[-1]
    assert (triggered["audio_start_ms"], triggered["audio_end_ms"]) == (stopped, stopped + 1000)
    assert_all_sent_valid(sim)


async def test_idle_timer_needs_a_response_first_and_can_be_turned_off(sim: Simulator) -> None:
    c = await open_client(sim)
    await ga_text_session(c, idle_timeout_ms=300)
    await c.stream(SILENCE_MS * 1000)  # nothing has been said yet: no timer
    assert await c.drain(0.5) == []
    await text_reply(c)
    await ga_text_session(c, idle_timeout_ms=None)
    await c.stream(SILENCE_MS * 1000)
    assert await c.drain(0.5) == []


async def test_transcription_of_the_idle_segment(sim: Simulator) -> None:
    c = await open_client(sim)
    await ga_text_session(c, idle_timeout_ms=400)
    await c.send(
        {"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}}
    )  # fmt: skip
    await c.until("session.updated")
    await text_reply(c)
    await c.stream(SILENCE_MS * 500)
    got = await c.until("response.done")
    failed = next(
        e for e in got if e["type"] == "conversation.item.input_audio_transcription.failed"
    )
    assert failed["item_id"] == got[0]["item_id"]
    assert_all_sent_valid(sim)


async def test_a_new_timeout_applies_to_the_running_timer(sim: Simulator) -> None:
    c = await open_client(sim)
    await ga_text_session(c, idle_timeout_ms=5000)
    await text_reply(c)
    await c.stream(SILENCE_MS * 400)
    await c.send({"type": "session.update", "session": {"type": "realtime", "instructions": "x"}})
    await c.until("session.updated")
    await ga_text_session(c, idle_timeout_ms=800)
    await c.stream(SILENCE_MS * 600)
    triggered = (await c.until("input_audio_buffer.timeout_triggered"))[-1]
    assert (triggered["audio_start_ms"], triggered["audio_end_ms"]) == (0, 800)
    await c.until("response.done")
    assert_all_sent_valid(sim)
