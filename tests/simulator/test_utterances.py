"""Known utterances: the bundled spoken WAVs are recognised by their loudness envelope."""

from __future__ import annotations

import array
import functools
import wave
from typing import Any

import pytest

from realtime_simulator import Simulator
from realtime_simulator.utterances import (
    TABLE_DIR,
    known_utterances,
    levels_db,
    recognise,
    similarity,
    voiced_span,
)
from realtime_simulator.vad import EnergyVad, Segment

from .conftest import FIXTURES, Client, assert_all_sent_valid, open_client, types, wav_pcm

WHAT_TIME = "What time is it, use get current time."


def read_wav(path: Any) -> tuple[bytes, int]:
    with wave.open(str(path)) as w:
        assert (w.getsampwidth(), w.getnchannels()) == (2, 1)
        return w.readframes(w.getnframes()), w.getframerate()


def linear_resample(pcm: bytes, src: int, dst: int) -> bytes:
    """A simple resampler: linear interpolation, no filtering."""
    a = array.array("h", pcm)
    out = array.array("h")
    for i in range(len(a) * dst // src):
        pos = i * src / dst
        j = int(pos)
        frac = pos - j
        nxt = a[min(j + 1, len(a) - 1)]
        out.append(round(a[j] * (1 - frac) + nxt * frac))
    return out.tobytes()


def gain(pcm: bytes, factor: float) -> bytes:
    return array.array("h", (round(s * factor) for s in array.array("h", pcm))).tobytes()


def vad_turns(pcm: bytes, chunk: int = 960) -> list[Segment]:
    """Stream through the simulator's VAD as a client would; the segment of each turn."""
    vad = EnergyVad()
    segments = []
    for i in range(0, len(pcm), chunk):
        segments += [e.segment for e in vad.feed(pcm[i : i + chunk]) if e.kind == "stop"]
    return [s for s in segments if s is not None]


@functools.cache
def what_time_variants() -> dict[str, bytes]:
    as_is = wav_pcm("what_time_24k.wav")
    at_48k, rate = read_wav(FIXTURES / "what_time_48k.wav")
    assert rate == 48000
    return {
        "as-is": as_is,
        "48 kHz recording resampled to 24 kHz": linear_resample(at_48k, 48000, 24000),
        "via 44.1 kHz": linear_resample(linear_resample(as_is, 24000, 44100), 44100, 24000),
        "1237 ms of leading silence": bytes(48 * 1237 + 2) + as_is,
        "12 dB quieter": gain(as_is, 0.25),
    }


@pytest.mark.parametrize("variant", list(what_time_variants()))
@pytest.mark.parametrize("chunk", [960, 4096])
def test_the_fixture_is_recognised_through_the_vad(variant: str, chunk: int) -> None:
    pcm = what_time_variants()[variant] + bytes(48 * 800)
    [segment] = vad_turns(pcm, chunk)
    assert recognise(segment) == WHAT_TIME


@pytest.mark.parametrize(
    "fixture", ["hello_24k.wav", "story_request_24k.wav", "two_turns_24k.wav", "silence_2s_24k.wav"]
)
def test_unrelated_fixtures_are_not_recognised(fixture: str) -> None:
    pcm = wav_pcm(fixture) + bytes(48 * 800)
    segments = vad_turns(pcm)
    assert len(segments) == {"two_turns_24k.wav": 2, "silence_2s_24k.wav": 0}.get(fixture, 1)
    assert all(recognise(s) is None for s in segments)
    whole = EnergyVad()
    whole.feed(pcm)
    assert recognise(whole.take_segment()) is None  # the whole file as one manual commit


def test_each_bundled_utterance_matches_only_itself() -> None:
    utterances = known_utterances()
    assert len(utterances) >= 3 and WHAT_TIME in {u.text for u in utterances}
    for spoken in utterances:
        pcm, rate = read_wav(TABLE_DIR / spoken.file)
        assert rate == 24000
        [segment] = vad_turns(pcm + bytes(48 * 800))
        span = voiced_span(levels_db(segment.envelope))
        assert span is not None
        for other in utterances:
            score = similarity(other, span)
            if other is spoken:
                assert score is not None and score > 0.95
            else:
                assert score is None or score < 0.6, (spoken.file, other.file, score)
        assert recognise(segment) == spoken.text


def test_the_test_copy_is_the_bundled_recording() -> None:
    assert (FIXTURES / "what_time_24k.wav").read_bytes() == (
        TABLE_DIR / "what_time_24k.wav"
    ).read_bytes()


TIME_TOOL = {"type": "function", "name": "get_current_time", "parameters": {"type": "object"}}


async def ga_setup(c: Client, transcription: dict[str, Any] | None) -> None:
    audio: dict[str, Any] = {"input": {"transcription": transcription}}
    session = {"type": "realtime", "tools": [TIME_TOOL], "audio": audio}
    await c.send({"type": "session.update", "session": session})
    await c.until("session.updated")


async def test_a_spoken_request_transcribes_and_calls_the_tool(sim: Simulator) -> None:
    c = await open_client(sim)
    await ga_setup(c, {"model": "gpt-4o-transcribe"})
    await c.stream(wav_pcm("what_time_24k.wav") + bytes(48 * 800))
    got = await c.until("rate_limits.updated")
    completed = next(
        e for e in got if e["type"] == "conversation.item.input_audio_transcription.completed"
    )
    assert completed["transcript"] == WHAT_TIME
    deltas = [e["delta"] for e in got if e["type"].endswith("transcription.delta")]
    assert "".join(deltas) == WHAT_TIME
    [call] = got[-2]["response"]["output"]
    assert (call["type"], call["name"], call["arguments"]) == (
        "function_call",
        "get_current_time",
        "{}",
    )
    assert_all_sent_valid(sim)


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_the_model_hears_the_request_without_transcription(
    sim: Simulator, dialect: str
) -> None:
    c = await open_client(sim, dialect)
    if dialect == "ga":
        await ga_setup(c, None)
    else:
        await c.send({"type": "session.update", "session": {"tools": [TIME_TOOL]}})
        await c.until("session.updated")
    at_48k, _ = read_wav(FIXTURES / "what_time_48k.wav")
    await c.stream(bytes(48 * 333) + linear_resample(at_48k, 48000, 24000) + bytes(48 * 800))
    got = await c.until("rate_limits.updated")
    assert not any("transcription" in t for t in types(got))
    assert got[-2]["response"]["output"][0]["name"] == "get_current_time"
    assert_all_sent_valid(sim)


async def test_transcription_prompt_spells_the_tool_name(sim: Simulator) -> None:
    c = await open_client(sim)
    await ga_setup(c, {"model": "whisper-1", "prompt": "get_current_time, add_note"})
    await c.stream(wav_pcm("what_time_24k.wav") + bytes(48 * 800))
    got = await c.until("conversation.item.input_audio_transcription.completed")
    assert got[-1]["transcript"] == "What time is it, use get_current_time."
    await c.until("rate_limits.updated")


async def test_language_shows_in_the_fallback_transcript_only(sim: Simulator) -> None:
    c = await open_client(sim)
    await ga_setup(c, {"model": "whisper-1", "language": "fr"})
    await c.stream(wav_pcm("story_request_24k.wav") + bytes(48 * 800))
    got = await c.until("conversation.item.input_audio_transcription.completed")
    transcript = got[-1]["transcript"]
    assert transcript.startswith("Simulated transcript of 2.")
    assert transcript.endswith(" seconds of speech (language: fr).")
    reply = (await c.until("response.done"))[-1]["response"]["output"][0]
    assert reply["type"] == "message"  # no tool named in the fallback text
    await c.stream(wav_pcm("what_time_24k.wav") + bytes(48 * 800))
    got = await c.until("conversation.item.input_audio_transcription.completed")
    assert got[-1]["transcript"] == WHAT_TIME
    await c.until("response.done")
    assert_all_sent_valid(sim)


async def test_a_recognised_utterance_without_tools_is_quoted(sim: Simulator) -> None:
    c = await open_client(sim)
    await c.send(
        {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}}
    )
    await c.until("session.updated")
    await c.stream(wav_pcm("what_time_24k.wav") + bytes(48 * 800))
    done = (await c.until("response.done"))[-1]["response"]
    text = done["output"][0]["content"][0]["text"]
    assert (
        text == "You said: What time is it, use get current time. This is the simulator speaking."
    )
