from __future__ import annotations

import base64

import pytest

from realtime_simulator import Simulator

from .conftest import assert_all_sent_valid, open_client, types, wav_pcm

GA_TEXT_SESSION = {"type": "realtime", "output_modalities": ["text"]}


def ga_update(**input_audio: object) -> dict[str, object]:
    return {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": input_audio}},
    }


async def test_session_update_merges_ga(sim: Simulator) -> None:
    c = await open_client(sim)
    await c.send(
        {
            "type": "session.update",
            "event_id": "evt_1",
            "session": {
                "type": "realtime",
                "instructions": "Be brief.",
                "audio": {
                    "input": {"transcription": {"model": "whisper-1"}},
                    "output": {"voice": "marin"},
                },
            },
        }
    )
    updated = (await c.recv())["session"]
    assert updated["instructions"] == "Be brief."
    assert updated["audio"]["output"]["voice"] == "marin"
    assert updated["audio"]["input"]["transcription"] == {"model": "whisper-1"}
    # untouched fields survive
    assert updated["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert updated["output_modalities"] == ["audio"]
    await c.send(ga_update(turn_detection=None))
    assert (await c.recv())["session"]["audio"]["input"]["turn_detection"] is None
    assert_all_sent_valid(sim)


async def test_session_update_merges_beta(sim: Simulator) -> None:
    c = await open_client(sim, "beta")
    await c.send({"type": "session.update", "session": {"modalities": ["text"], "voice": "echo"}})
    s = (await c.recv())["session"]
    assert s["modalities"] == ["text"] and s["voice"] == "echo"
    assert s["turn_detection"]["type"] == "server_vad"
    await c.send(
        {
            "type": "session.update",
            "session": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 700}},
        }
    )
    td = (await c.recv())["session"]["turn_detection"]
    assert td["silence_duration_ms"] == 700 and td["threshold"] == 0.5


async def test_session_update_errors(sim: Simulator) -> None:
    ga = await open_client(sim)
    # beta shape on GA: session.type missing (not a valid GA client event, so sent raw)
    await ga.send_raw('{"type":"session.update","event_id":"e1","session":{"modalities":["text"]}}')
    err = (await ga.recv())["error"]
    assert (err["code"], err["param"], err["event_id"]) == (
        "missing_required_parameter",
        "session.type",
        "e1",
    )
    await ga.send(
        {
            "type": "session.update",
            "event_id": "e2",
            "session": {"type": "realtime", "model": "gpt-4o-realtime-preview"},
        }
    )
    err = (await ga.recv())["error"]
    assert err["param"] == "session.model" and err["event_id"] == "e2"
    beta = await open_client(sim, "beta")
    await beta.send_raw(
        '{"type":"session.update","event_id":"e3","session":{"output_modalities":["text"]}}'
    )
    err = (await beta.recv())["error"]
    assert (err["code"], err["param"], err["event_id"]) == (
        "unknown_parameter",
        "session.output_modalities",
        "e3",
    )
    # the session is still usable
    await beta.send({"type": "session.update", "session": {"instructions": "x"}})
    assert (await beta.recv())["type"] == "session.updated"
    assert_all_sent_valid(sim)


def text_item(text: str) -> dict[str, object]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


async def test_text_turn_ga_audio_reply_order(sim: Simulator) -> None:
    c = await open_client(sim)
    await c.send(text_item("Hello there"))
    assert types(await c.until("conversation.item.done")) == [
        "conversation.item.added",
        "conversation.item.done",
    ]
    await c.send({"type": "response.create"})
    got = await c.until("rate_limits.updated")
    t = types(got)
    assert t[:4] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
    ]
    assert t[-7:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "rate_limits.updated",
    ]
    deltas = [e for e in got if e["type"] == "response.output_audio.delta"]
    sizes = [len(base64.b64decode(e["delta"])) for e in deltas]
    assert len(deltas) >= 5 and all(4800 <= s <= 24000 for s in sizes[:-1])
    # transcript and audio deltas interleave
    middle = t[4:-7]
    assert (
        middle[0] == "response.output_audio_transcript.delta"
        and middle[1] == "response.output_audio.delta"
    )
    transcript = "".join(
        e["delta"] for e in got if e["type"] == "response.output_audio_transcript.delta"
    )
    assert transcript == "You said: Hello there. This is the simulator speaking."
    done = got[-2]["response"]
    assert (
        done["status"] == "completed"
        and done["output"][0]["content"][0]["transcript"] == transcript
    )
    usage = done["usage"]
    assert usage["output_token_details"]["audio_tokens"] == sum(sizes) // 48 // 50
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    assert 2000 <= sum(sizes) / 48 <= 4000  # a reply lasts 2-4 s


async def test_text_turn_beta_text_only(sim: Simulator) -> None:
    c = await open_client(sim, "beta")
    await c.send({"type": "session.update", "session": {"modalities": ["text"]}})
    await c.until("session.updated")
    await c.send(text_item("Hi"))
    assert types(await c.until("conversation.item.created")) == ["conversation.item.created"]
    await c.send({"type": "response.create"})
    got = await c.until("rate_limits.updated")
    t = types(got)
    assert t[:4] == [
        "response.created",
        "response.output_item.added",
        "conversation.item.created",
        "response.content_part.added",
    ]
    assert "response.audio.delta" not in t and "response.text.delta" in t
    assert t[-5:] == [
        "response.text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    assert got[-2]["response"]["output"][0]["content"][0]["type"] == "text"


async def test_text_turn_ga_text_modality_and_reply_text() -> None:
    async with Simulator(pace="fast", reply_text="Fixed reply.") as sim:
        c = await open_client(sim)
        await c.send({"type": "session.update", "session": GA_TEXT_SESSION})
        await c.until("session.updated")
        await c.send(text_item("anything"))
        await c.send({"type": "response.create", "response": {"metadata": {"k": "v"}}})
        got = await c.until("response.done")
        assert (
            "".join(e["delta"] for e in got if e["type"] == "response.output_text.delta")
            == "Fixed reply."
        )
        assert got[-1]["response"]["metadata"] == {"k": "v"}
        assert got[-1]["response"]["output"][0]["content"][0] == {
            "type": "output_text",
            "text": "Fixed reply.",
        }


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_audio_turn_server_vad_from_wav(sim: Simulator, dialect: str) -> None:
    c = await open_client(sim, dialect)
    if dialect == "ga":
        await c.send(ga_update(transcription={"model": "whisper-1"}))
    else:
        await c.send(
            {
                "type": "session.update",
                "session": {"input_audio_transcription": {"model": "whisper-1"}},
            }
        )
    await c.until("session.updated")
    await c.stream(wav_pcm("hello_24k.wav") + bytes(48 * 800))
    got = await c.until("rate_limits.updated")
    t = types(got)
    added = (
        ["conversation.item.added", "conversation.item.done"]
        if dialect == "ga"
        else ["conversation.item.created"]
    )
    assert t[: 3 + len(added)] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        *added,
    ]
    assert t.count("input_audio_buffer.speech_started") == 1
    started, stopped, committed = got[0], got[1], got[2]
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    # speech starts ~20 ms in; prefix padding clips at 0. Ends at ~3.16 s of speech + 500 ms.
    assert started["audio_start_ms"] == 0
    assert 3500 <= stopped["audio_end_ms"] <= 3800
    assert got[3]["item"]["content"] == [{"type": "input_audio", "transcript": None}]
    completed = next(
        e for e in got if e["type"] == "conversation.item.input_audio_transcription.completed"
    )
    assert completed["transcript"].startswith("Simulated transcript of 3.")
    assert "response.created" in t and t.index("response.created") > t.index(completed["type"])
    reply = next(e for e in got if e["type"] == "response.done")["response"]
    assert reply["status"] == "completed"
    assert_all_sent_valid(sim)


async def test_two_turns_wav_gives_two_turns(sim: Simulator) -> None:
    c = await open_client(sim)
    await c.send({"type": "session.update", "session": GA_TEXT_SESSION})
    await c.until("session.updated")
    await c.stream(wav_pcm("two_turns_24k.wav"))
    got = await c.drain(0.5)
    starts = [e for e in got if e["type"] == "input_audio_buffer.speech_started"]
    stops = [e for e in got if e["type"] == "input_audio_buffer.speech_stopped"]
    assert len(starts) == len(stops) == 2
    assert starts[0]["audio_start_ms"] == 2000 - 300 + 20 * 1  # first voiced window at 2.02 s
    assert starts[1]["audio_start_ms"] > stops[0]["audio_end_ms"]
    assert types(got).count("response.done") == 2


async def test_silence_detects_nothing_and_threshold_is_honoured(sim: Simulator) -> None:
    c = await open_client(sim)
    await c.stream(wav_pcm("silence_2s_24k.wav"))
    assert await c.drain(0.3) == []
    # threshold 1.0 (gate at 0 dBFS): nothing is ever speech
    await c.send(ga_update(turn_detection={"type": "server_vad", "threshold": 1.0}))
    await c.until("session.updated")
    await c.stream(wav_pcm("hello_24k.wav"))
    assert await c.drain(0.3) == []


async def test_prefix_padding_and_silence_duration_are_honoured(sim: Simulator) -> None:
    c = await open_client(sim)
    td = {
        "type": "server_vad",
        "prefix_padding_ms": 100,
        "silence_duration_ms": 200,
        "create_response": False,
    }
    await c.send(ga_update(turn_detection=td))
    await c.until("session.updated")
    await c.stream(bytes(48 * 1000) + wav_pcm("story_request_24k.wav") + bytes(48 * 500))
    got = await c.drain(0.3)
    starts = [e["audio_start_ms"] for e in got if e["type"] == "input_audio_buffer.speech_started"]
    assert starts[0] == 1000 + 40 - 100  # first voiced window at 1.04 s, minus 100 ms padding
    assert "response.created" not in types(got)


async def test_manual_turn_and_commit_empty(sim: Simulator) -> None:
    c = await open_client(sim)
    await c.send(ga_update(turn_detection=None))
    await c.until("session.updated")
    await c.send({"type": "input_audio_buffer.commit", "event_id": "c1"})
    err = (await c.recv())["error"]
    assert err["code"] == "input_audio_buffer_commit_empty" and err["event_id"] == "c1"
    await c.append(bytes(48 * 50))  # 50 ms: still too small
    await c.send({"type": "input_audio_buffer.commit"})
    assert (await c.recv())["error"]["code"] == "input_audio_buffer_commit_empty"
    await c.stream(wav_pcm("story_request_24k.wav"))
    assert await c.drain(0.2) == []  # no VAD events
    await c.send({"type": "input_audio_buffer.commit"})
    got = await c.until("conversation.item.done")
    assert types(got) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    await c.send({"type": "response.create"})
    done = (await c.until("rate_limits.updated"))[-2]
    assert done["response"]["status"] == "completed"
    transcript = done["response"]["output"][0]["content"][0]["transcript"]
    assert transcript.startswith("I heard 2.")
    await c.append(bytes(4800))
    await c.send({"type": "input_audio_buffer.clear"})
    assert (await c.recv())["type"] == "input_audio_buffer.cleared"
    await c.send({"type": "input_audio_buffer.commit"})
    assert (await c.recv())["error"]["code"] == "input_audio_buffer_commit_empty"
    assert_all_sent_valid(sim)


async def test_transcription_fails_on_unusable_audio(sim: Simulator) -> None:
    c = await open_client(sim, "beta")
    await c.send(
        {
            "type": "session.update",
            "session": {
                "turn_detection": None,
                "input_audio_transcription": {"model": "whisper-1"},
            },
        }
    )
    await c.until("session.updated")
    await c.stream(wav_pcm("silence_2s_24k.wav"))
    await c.send({"type": "input_audio_buffer.commit"})
    got = await c.until("conversation.item.input_audio_transcription.failed")
    assert got[-1]["error"]["code"] == "audio_unintelligible"
