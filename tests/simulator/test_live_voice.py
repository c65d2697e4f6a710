"""GPT-Live voice: transcripts, spoken answers, formats, mute, barge-in, usage, close."""

from __future__ import annotations

import base64
import itertools
import warnings

import pytest
from websockets.exceptions import ConnectionClosed

from realtime_simulator import Simulator
from realtime_simulator.live.codec import AudioFormat, decode_input, encode_output

from .conftest import assert_all_sent_valid
from .live_client import heard, open_live, spoken, utterance

DEFAULT_REPLY = "I heard 1.16 seconds of speech. This is the simulator speaking."


async def test_speech_is_transcribed_then_answered(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start()
    await c.speak(utterance(1200))
    events = await c.until_spoken(DEFAULT_REPLY)
    deltas = [e for e in events if e["type"] == "session.input_transcript.delta"]
    assert heard(deltas) == "Simulated transcript of 1.16 seconds of speech."
    # Timed on the session timeline: the voiced span (first and last loud 20 ms windows).
    assert deltas[0]["start_ms"] == 20 and deltas[-1]["end_ms"] == 1180
    assert all(a["end_ms"] == b["start_ms"] for a, b in itertools.pairwise(deltas))
    first_out = next(i for i, e in enumerate(events) if e["type"].startswith("session.output"))
    assert first_out > events.index(deltas[-1])  # the model answers after the user stops
    outputs = [e for e in events if e["type"] == "session.output_transcript.delta"]
    assert outputs[0]["start_ms"] == 1680  # speech end + the VAD's 500 ms of silence
    usage = await c.until("session.usage.updated")  # sent once the answer is over
    assert usage[-1]["usage"]["seconds"] == (1680 + 60 * len(DEFAULT_REPLY)) // 1000
    audio = [e for e in c.events if e["type"] == "session.output_audio.delta"]
    assert set(audio[0]) == {"type", "delta"}  # no event_id, no item/response ids
    total = sum(len(base64.b64decode(e["delta"])) for e in audio)
    assert total == 48 * 60 * len(DEFAULT_REPLY)  # 60 ms per character at 24 kHz
    assert not any("done" in e["type"] for e in c.events)
    entry = sim.connections[-1].spoken[0]
    assert (entry["kind"], entry["said"], entry["yielded"]) == ("reply", DEFAULT_REPLY, False)
    assert_all_sent_valid(sim)


async def test_scripted_words_programmatic_and_by_query(sim: Simulator) -> None:
    sim.next_live_transcripts(["What is the time?", "Thanks."])
    c = await open_live(sim)
    await c.start()
    for words in ("What is the time?", "Thanks."):
        await c.speak(utterance(900))
        events = await c.until_spoken(f"You said: {words}. This is the simulator speaking.")
        assert heard(events) == words
    await c.speak(utterance(600))
    events = await c.until_spoken("I heard 0.56 seconds of speech. This is the simulator speaking.")
    assert heard(events) == "Simulated transcript of 0.56 seconds of speech."
    c2 = await open_live(sim, query="sim_transcript=Hello%20there|Bye")
    await c2.start()
    await c2.speak(utterance(900))
    assert heard(await c2.until_spoken("You said: Hello there. This is the simulator speaking."))


async def test_silence_is_not_answered(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start()
    await c.speak(bytes(48 * 3000))
    await c.say_typed("ping")  # answered in order, so anything the silence caused comes first
    events = await c.until_spoken("You said: ping. This is the simulator speaking.")
    assert heard(events) == ""
    assert next(e["type"] for e in events) == "session.commentary.appended"


@pytest.mark.parametrize(
    ("fmt", "chunk_bytes"),
    [({"type": "audio/pcm", "rate": 16000}, 6400), ({"type": "audio/pcmu", "rate": 8000}, 1600),
     ({"type": "audio/pcma", "rate": 8000}, 1600)],
)  # fmt: skip
async def test_other_audio_formats(
    sim: Simulator, fmt: dict[str, object], chunk_bytes: int
) -> None:
    audio_format = AudioFormat.from_config(fmt)
    pcm24 = utterance(1200)
    raw = encode_output(audio_format, pcm24)  # 24 kHz PCM16 -> the session's format
    c = await open_live(sim)
    await c.start(audio={"format": fmt})
    await c.speak(raw, frame_bytes=audio_format.bytes_per_ms * 20)
    events = await c.until_spoken(DEFAULT_REPLY)
    assert heard(events) == "Simulated transcript of 1.16 seconds of speech."
    audio = [
        base64.b64decode(e["delta"]) for e in events if e["type"] == "session.output_audio.delta"
    ]
    assert len(audio[0]) == chunk_bytes  # 200 ms per delta in the session format
    assert_all_sent_valid(sim)


def test_g711_matches_the_standard_codec() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")  # gone in Python 3.13: then skipped
    pcm24 = utterance(400, 0)
    pcm8k = encode_output(AudioFormat("audio/pcm", 8000), pcm24)
    for kind, encode, decode in (
        ("audio/pcmu", audioop.lin2ulaw, audioop.ulaw2lin),
        ("audio/pcma", audioop.lin2alaw, audioop.alaw2lin),
    ):
        fmt = AudioFormat(kind, 8000)
        encoded = encode(pcm8k, 2)
        assert encode_output(fmt, pcm24) == encoded
        assert decode_input(fmt, encoded) == decode(encoded, 2)
        assert decode_input(fmt, bytes(range(256))) == decode(bytes(range(256)), 2)


async def test_mute_feeds_silence(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start()
    await c.send({"type": "session.input_audio.mute", "event_id": "m1"})
    muted = await c.recv()
    assert (muted["type"], muted["client_event_id"]) == ("session.input_audio.muted", "m1")
    await c.speak(utterance(1200))
    await c.send({"type": "session.input_audio.unmute"})
    unmuted = await c.recv()
    assert unmuted["type"] == "session.input_audio.unmuted" and "client_event_id" not in unmuted
    await c.speak(utterance(600))
    events = await c.until_spoken("I heard 0.56 seconds of speech. This is the simulator speaking.")
    assert heard(events) == "Simulated transcript of 0.56 seconds of speech."  # one utterance
    assert_all_sent_valid(sim)


async def test_barge_in_makes_the_model_yield(rt_sim: Simulator) -> None:
    long_words = "tell me about " + "the weather " * 12
    rt_sim.next_live_transcripts([long_words.strip()])
    c = await open_live(rt_sim)
    await c.start()
    await c.speak(utterance(900))
    await c.until("session.output_audio.delta")  # the model has started to answer
    await c.speak(utterance(600))  # the user talks over it
    second = "I heard 0.56 seconds of speech. This is the simulator speaking."
    events = await c.until_spoken(second, wait=15)
    await c.until("session.usage.updated")  # answer 2 is over (its last audio went out)
    first, again = rt_sim.connections[-1].spoken
    assert first["yielded"] is True and again["yielded"] is False
    assert first["text"].startswith(first["said"]) and len(first["said"]) < len(first["text"])
    assert spoken(c.events) == first["said"] + second  # nothing of answer 1 after the cut
    assert again["start_ms"] >= first["end_ms"]
    assert heard(events) == "Simulated transcript of 0.56 seconds of speech."
    assert_all_sent_valid(rt_sim)


async def test_close_returns_final_usage_then_closes_normally(sim: Simulator) -> None:
    c = await open_live(sim)
    session = await c.start()
    await c.speak(utterance(1200))
    await c.until_spoken(DEFAULT_REPLY)
    await c.send({"type": "session.close", "event_id": "bye"})
    closed = (await c.until("session.closed"))[-1]
    assert closed["reason"] == "close_requested" and closed["client_event_id"] == "bye"
    assert closed["session"]["id"] == session["id"] and closed["session"]["status"] == "active"
    assert closed["usage"]["seconds"] == 5.0  # 2.0 s of input; 3.78 s of answer from 1.68 s
    with pytest.raises(ConnectionClosed):
        await c.recv(2)
    record = sim.connections[-1]
    await record.closed.wait()
    assert (record.close_code, record.closed_by) == (1000, "server")
    assert_all_sent_valid(sim)


async def test_usage_is_also_reported_periodically() -> None:
    async with Simulator(pace="fast", live_usage_interval_s=0.05) as sim:
        c = await open_live(sim)
        await c.start()
        await c.speak(bytes(48 * 2500))
        # a tick may fall while the audio is still arriving (a loaded machine): wait for the
        # one that has it all, then the ticker keeps reporting the same total
        while (await c.until("session.usage.updated"))[-1]["usage"]["seconds"] != 2.0:
            pass
        second = (await c.until("session.usage.updated"))[-1]
        assert second["usage"]["seconds"] == 2.0
        assert sim.connections[-1].spoken == []  # nothing was said: these are the ticker's
        assert_all_sent_valid(sim)


async def test_close_while_speaking_ends_with_session_closed(rt_sim: Simulator) -> None:
    c = await open_live(rt_sim)
    await c.start()
    await c.speak(utterance(1200))
    await c.until("session.output_audio.delta")
    await c.send({"type": "session.close"})
    await c.until("session.closed")
    record = rt_sim.connections[-1]
    await record.closed.wait()
    assert record.sent[-1]["type"] == "session.closed"  # no speech or usage after it
    assert record.spoken[0]["yielded"] is True
    assert_all_sent_valid(rt_sim)


async def test_the_voice_holds_while_the_user_speaks(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start()
    pcm = utterance(1200)
    await c.speak(pcm[: 48 * 600])  # the user is mid-sentence...
    await c.say_typed("ping")  # ...when a typed message arrives
    appended = await c.recv()
    assert appended["type"] == "session.commentary.appended"
    await c.speak(pcm[48 * 600 :])
    events = await c.until_spoken(DEFAULT_REPLY)
    kinds = [e["type"] for e in events if "transcript" in e["type"]]
    first_out = kinds.index("session.output_transcript.delta")
    assert "session.input_transcript.delta" not in kinds[first_out:]  # nothing said over the user
    assert spoken(events) == "You said: ping. This is the simulator speaking. " + DEFAULT_REPLY
    first = next(e for e in events if e["type"] == "session.output_transcript.delta")
    assert first["start_ms"] == 1680  # held until the user stopped (speech end + 500 ms)
    assert_all_sent_valid(sim)
