"""Each answer's latency as the relay measured it: in response_done, and in the session's record."""

from __future__ import annotations

import pytest

from realtime.kernel.latency import BUCKETS_MS, NONE, bucket_percentile, percentile
from realtime.models import RealtimeSession
from realtime.session.latency import AnswerClock
from tests.relay.conftest import Client, configure, wav_pcm

SILENCE_1S = bytes(48000)


def assert_answered(latency: dict) -> None:
    """An answer to a turn, with audio: every figure, the relay's share part of the wait."""
    assert set(latency) == {"first_audio", "first_text", "relay"}
    assert latency["first_audio"] >= 0 and latency["first_text"] >= 0
    assert 0 <= latency["relay"] <= latency["first_audio"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("relay_config")
async def test_a_typed_message_is_timed_to_its_first_audio_and_text_and_recorded(simulator):
    client = Client()
    await client.connect()
    info = await client.until(action="session_info")
    for text in ("hello there", "and how are you"):
        await client.send_json({"type": "user_message", "text": text})
        await client.until_count("response_done", 1 + (text != "hello there"))
    answers = client.of("control", "response_done")
    for done in answers:
        assert_answered(done["latency_ms"])
    await client.close()
    row = await RealtimeSession.objects.aget(id=info["session_id"])
    assert row.latency["connect_ms"] >= 0
    expected = [
        [d["latency_ms"]["first_audio"], d["latency_ms"]["first_text"], d["latency_ms"]["relay"]]
        for d in answers
    ]
    assert row.latency["answers"] == expected
    assert sum(row.latency["counts"]["first_audio"]) == 2
    assert len(row.latency["counts"]["first_audio"]) == len(BUCKETS_MS) + 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("relay_config")
async def test_a_spoken_turn_is_timed_from_speech_stopped(simulator):
    client = Client()
    await client.connect()
    await client.send_audio(wav_pcm("hello_24k.wav") + SILENCE_1S)
    await client.until(action="speech_stopped")
    done = await client.until(action="response_done")
    assert_answered(done["latency_ms"])
    await client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("relay_config")
async def test_a_committed_turn_is_timed_from_the_commit(simulator):
    configure(turn_detection=None)
    client = Client()
    await client.connect()
    await client.send_audio(wav_pcm("hello_24k.wav"))
    await client.send_json({"type": "commit"})
    done = await client.until(action="response_done")
    assert_answered(done["latency_ms"])
    await client.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("relay_config")
async def test_a_text_only_answer_has_no_audio_figures(simulator):
    configure(output_modalities="text")
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "hello"})
    done = await client.until(action="response_done")
    latency = done["latency_ms"]
    assert latency["first_audio"] is None and latency["relay"] is None
    assert latency["first_text"] >= 0
    assert client.audio == bytearray()
    await client.close()


# ---- the clock's rules (no socket) ------------------------------------------------------------


def test_an_answer_no_turn_asked_for_has_no_figures():
    clock = AnswerClock()
    assert not clock.audio_due  # the greeting: nobody is waiting
    assert clock.answer_done() == NONE
    assert clock.kept == []


def test_an_answer_that_wrote_nothing_leaves_the_clock_running_for_the_next():
    clock = AnswerClock()
    clock.turn_ended(now=0.0)
    assert clock.answer_done() == NONE  # a tool call's answer: no words yet
    assert clock.audio_due and clock.text_due
    clock.text_written()
    clock.audio_written(received=clock.turn_end or 0.0)
    figures = clock.answer_done()
    assert figures.first_audio is not None and figures.first_text is not None
    assert figures.first_audio >= figures.relay >= 0  # measured from the turn's end at 0.0
    assert not clock.audio_due and clock.turn_end is None
    assert clock.record() == {
        "connect_ms": None,
        "answers": [figures.wire()],
        "counts": clock.counts,
    }
    assert clock.record() is None  # nothing new to write


def test_a_turn_ended_during_an_answer_is_timed_on_the_next_answer():
    clock = AnswerClock()
    clock.turn_ended()
    clock.audio_written(received=clock.turn_end or 0.0)
    clock.turn_ended()  # typed while the first answer plays: that one is cut
    assert not clock.audio_due  # the cut answer's later audio is not the new turn's
    first = clock.answer_done()
    assert first.first_audio is not None
    assert clock.audio_due and clock.turn_end is not None  # the new turn still waits
    clock.audio_written(received=clock.turn_end)
    assert clock.answer_done().first_audio is not None
    assert len(clock.kept) == 2


def test_speaking_again_stops_the_clock():
    clock = AnswerClock()
    clock.turn_ended()
    clock.speech()
    assert not clock.audio_due and clock.turn_end is None
    assert clock.answer_done() == NONE


def test_percentiles():
    assert percentile([], 0.5) is None
    assert percentile([300, 100, 200], 0.5) == 200
    assert percentile(list(range(1, 101)), 0.95) == 95
    counts = [0] * (len(BUCKETS_MS) + 1)
    counts[BUCKETS_MS.index(300)] = 10  # ten answers in (250, 300] ms
    assert 250 <= bucket_percentile(counts, 0.5) <= 300
    assert bucket_percentile([0] * len(counts), 0.5) is None
