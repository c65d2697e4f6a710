"""The Realtime API family in G.711 μ-law 8 kHz (a phone line's audio): the simulator takes
``audio/pcmu`` (GA) or ``g711_ulaw`` (beta) input, hears speech in it, and answers in it."""

from __future__ import annotations

import base64

import pytest

from realtime_simulator import Simulator
from realtime_simulator.live.codec import AudioFormat, encode_output

from .conftest import assert_all_sent_valid, open_client, types, wav_pcm

PCMU = AudioFormat("audio/pcmu", 8000)


def pcmu_update(dialect: str) -> dict[str, object]:
    if dialect == "ga":
        fmt = {"type": "audio/pcmu"}
        audio = {"input": {"format": fmt}, "output": {"format": fmt}}
        return {"type": "session.update", "session": {"type": "realtime", "audio": audio}}
    session = {"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw"}
    return {"type": "session.update", "session": session}


async def _reply_audio(c: object, dialect: str, update: dict[str, object] | None) -> bytes:
    if update is not None:
        await c.send(update)  # type: ignore[attr-defined]
        await c.until("session.updated")  # type: ignore[attr-defined]
    content = [{"type": "input_text", "text": "Hi"}]
    item = {"type": "message", "role": "user", "content": content}
    await c.send({"type": "conversation.item.create", "item": item})  # type: ignore[attr-defined]
    await c.send({"type": "response.create"})  # type: ignore[attr-defined]
    got = await c.until("response.done")  # type: ignore[attr-defined]
    delta = "response.output_audio.delta" if dialect == "ga" else "response.audio.delta"
    return b"".join(base64.b64decode(e["delta"]) for e in got if e["type"] == delta)


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_pcmu_session_answers_in_pcmu(sim: Simulator, dialect: str) -> None:
    pcm = await _reply_audio(await open_client(sim, dialect), dialect, None)
    c = await open_client(sim, dialect)
    ulaw = await _reply_audio(c, dialect, pcmu_update(dialect))
    # the same reply, one byte a sample at 8 kHz: a sixth of PCM16 24 kHz's bytes
    assert ulaw and abs(len(ulaw) * 6 - len(pcm)) <= 6 * len(types(c.events))
    assert ulaw != pcm[: len(ulaw)]
    session = next(e for e in c.events if e["type"] == "session.updated")["session"]
    if dialect == "ga":
        assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    else:
        assert session["input_audio_format"] == session["output_audio_format"] == "g711_ulaw"
    assert_all_sent_valid(sim)


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_voice_detection_hears_pcmu(sim: Simulator, dialect: str) -> None:
    c = await open_client(sim, dialect)
    await c.send(pcmu_update(dialect))
    await c.until("session.updated")
    speech = encode_output(PCMU, wav_pcm("hello_24k.wav") + bytes(48 * 800))
    for i in range(0, len(speech), 160):  # 20 ms frames of μ-law, as a phone line sends them
        await c.append(speech[i : i + 160])
    got = await c.until("response.done")
    t = types(got)
    assert t[:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]
    assert t.count("input_audio_buffer.speech_started") == 1
    # the same timings as the PCM16 fixture (test_turns.py): speech ends ~3.16 s + 500 ms
    assert 3500 <= got[1]["audio_end_ms"] <= 3800
    assert got[-1]["response"]["status"] == "completed"
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(
    ("dialect", "session", "param"),
    [
        ("ga", {"type": "realtime", "audio": {"input": {"format": {"type": "audio/mp3"}}}},
         "session.audio.input.format.type"),
        ("ga", {"type": "realtime", "audio": {"output": {"format": {"type": "audio/pcm",
                                                                    "rate": 8000}}}},
         "session.audio.output.format.rate"),
        ("beta", {"input_audio_format": "ulaw"}, "session.input_audio_format"),
    ],
)  # fmt: skip
async def test_unknown_audio_formats_are_refused(
    sim: Simulator, dialect: str, session: dict[str, object], param: str
) -> None:
    c = await open_client(sim, dialect)
    await c.send_raw(__import__("json").dumps({"type": "session.update", "session": session}))
    error = (await c.until("error"))[-1]["error"]
    assert (error["code"], error["param"]) == ("invalid_value", param)
