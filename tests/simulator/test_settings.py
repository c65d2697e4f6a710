"""GA session settings the relay sends: accepted, echoed, validated like the real service."""

from __future__ import annotations

from typing import Any

import pytest

from realtime_simulator import Simulator

from .conftest import Client, assert_all_sent_valid, open_client

INPUT = "session.audio.input"


def ga_session(**fields: Any) -> dict[str, Any]:
    return {"type": "session.update", "session": {"type": "realtime", **fields}}


def ga_input(**input_audio: Any) -> dict[str, Any]:
    return ga_session(audio={"input": input_audio})


async def updated(c: Client, event: dict[str, Any]) -> dict[str, Any]:
    await c.send(event)
    got = await c.recv()
    assert got["type"] == "session.updated", got
    return got["session"]


async def refused(c: Client, event: dict[str, Any], raw: bool = False) -> dict[str, Any]:
    event = {**event, "event_id": "evt_bad"}
    if raw:  # not a valid client event for the SDK either; send it unvalidated
        import json

        await c.send_raw(json.dumps(event))
    else:
        await c.send(event)
    got = await c.recv()
    assert got["type"] == "error", got
    assert got["error"]["event_id"] == "evt_bad"
    return got["error"]


async def test_noise_reduction_is_echoed_merged_and_cleared(sim: Simulator) -> None:
    c = await open_client(sim)
    s = await updated(c, ga_input(noise_reduction={"type": "near_field"}))
    assert s["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
    s = await updated(c, ga_input(noise_reduction={"type": "far_field", "strength": 0.4}))
    assert s["audio"]["input"]["noise_reduction"] == {"type": "far_field", "strength": 0.4}
    # the SDK: an omitted strength is preserved
    s = await updated(c, ga_input(noise_reduction={"type": "near_field"}))
    assert s["audio"]["input"]["noise_reduction"] == {"type": "near_field", "strength": 0.4}
    s = await updated(c, ga_input(noise_reduction=None))
    assert s["audio"]["input"]["noise_reduction"] is None
    assert s["audio"]["input"]["turn_detection"]["type"] == "server_vad"  # untouched
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(
    ("value", "code", "param"),
    [
        ({"type": "studio"}, "invalid_value", f"{INPUT}.noise_reduction.type"),
        (
            {"type": "near_field", "strength": 3},
            "invalid_value",
            f"{INPUT}.noise_reduction.strength",
        ),
        ({"strength": 0.5}, "missing_required_parameter", f"{INPUT}.noise_reduction.type"),
        ({"type": "near_field", "mode": 1}, "unknown_parameter", f"{INPUT}.noise_reduction.mode"),
    ],
)
async def test_noise_reduction_bad_values(
    sim: Simulator, value: dict[str, Any], code: str, param: str
) -> None:
    c = await open_client(sim)
    err = await refused(c, ga_input(noise_reduction=value), raw=True)
    assert (err["code"], err["param"]) == (code, param)
    # the session is unchanged and usable
    s = await updated(c, ga_session())
    assert s["audio"]["input"]["noise_reduction"] is None


async def test_noise_reduction_beta(sim: Simulator) -> None:
    c = await open_client(sim, "beta")
    s = await updated(
        c,
        {
            "type": "session.update",
            "session": {"input_audio_noise_reduction": {"type": "far_field"}},
        },
    )
    assert s["input_audio_noise_reduction"] == {"type": "far_field"}
    update = {"input_audio_noise_reduction": {"type": "far_field", "strength": 1}}
    err = await refused(c, {"type": "session.update", "session": update}, raw=True)
    assert (err["code"], err["param"]) == (
        "unknown_parameter",
        "session.input_audio_noise_reduction.strength",
    )
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(
    "value",
    [
        "auto",
        "disabled",
        {"type": "retention_ratio", "retention_ratio": 0.8},
        {
            "type": "retention_ratio",
            "retention_ratio": 1,
            "token_limits": {"post_instructions": 5000},
        },
    ],
)
async def test_truncation_accepted_and_echoed(sim: Simulator, value: Any) -> None:
    c = await open_client(sim)
    assert (await updated(c, ga_session(truncation=value)))["truncation"] == value
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(
    ("value", "code", "param"),
    [
        ("sometimes", "invalid_value", "session.truncation"),
        ({"type": "ratio", "retention_ratio": 0.5}, "invalid_value", "session.truncation.type"),
        ({"type": "retention_ratio", "retention_ratio": 1.5}, "invalid_value",
         "session.truncation.retention_ratio"),
        ({"type": "retention_ratio"}, "missing_required_parameter",
         "session.truncation.retention_ratio"),
        ({"type": "retention_ratio", "retention_ratio": 0.5,
          "token_limits": {"post_instructions": 0}},
         "invalid_value", "session.truncation.token_limits.post_instructions"),
        ({"type": "retention_ratio", "retention_ratio": 0.5, "keep": 1}, "unknown_parameter",
         "session.truncation.keep"),
    ],
)  # fmt: skip
async def test_truncation_bad_values(sim: Simulator, value: Any, code: str, param: str) -> None:
    c = await open_client(sim)
    err = await refused(c, ga_session(truncation=value), raw=True)
    assert (err["code"], err["param"]) == (code, param)


async def test_prompt_accepted_echoed_and_mentioned(sim: Simulator) -> None:
    c = await open_client(sim)
    prompt = {
        "id": "pmpt_123",
        "version": "7",
        "variables": {"city": "Paris", "note": {"type": "input_text", "text": "hi"}},
    }
    s = await updated(c, ga_session(prompt=prompt, output_modalities=["text"]))
    assert s["prompt"] == prompt
    await c.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "user",
                     "content": [{"type": "input_text", "text": "Hi"}]},
        }
    )  # fmt: skip
    await c.send({"type": "response.create"})
    done = (await c.until("rate_limits.updated"))[-2]["response"]
    text = done["output"][0]["content"][0]["text"]
    assert (
        text
        == "You said: Hi. This is the simulator speaking. Using stored prompt pmpt_123 version 7."
    )
    # a per-response prompt wins; null clears the session's
    await c.send({"type": "response.create", "response": {"prompt": {"id": "pmpt_other"}}})
    done = (await c.until("rate_limits.updated"))[-2]["response"]
    assert done["output"][0]["content"][0]["text"].endswith("Using stored prompt pmpt_other.")
    assert (await updated(c, ga_session(prompt=None)))["prompt"] is None
    await c.send({"type": "response.create"})
    done = (await c.until("rate_limits.updated"))[-2]["response"]
    assert "stored prompt" not in done["output"][0]["content"][0]["text"]
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(
    ("value", "code", "param"),
    [
        ({"version": "1"}, "missing_required_parameter", "session.prompt.id"),
        ({"id": ""}, "invalid_value", "session.prompt.id"),
        ({"id": "pmpt_1", "variables": {"x": 3}}, "invalid_value", "session.prompt.variables.x"),
        ({"id": "pmpt_1", "variables": {"x": {"type": "audio"}}}, "invalid_value",
         "session.prompt.variables.x"),
        ({"id": "pmpt_1", "name": "x"}, "unknown_parameter", "session.prompt.name"),
    ],
)  # fmt: skip
async def test_prompt_bad_values(sim: Simulator, value: Any, code: str, param: str) -> None:
    c = await open_client(sim)
    err = await refused(c, ga_session(prompt=value), raw=True)
    assert (err["code"], err["param"]) == (code, param)


async def test_transcription_language_and_prompt_echoed(sim: Simulator) -> None:
    c = await open_client(sim)
    transcription = {"model": "gpt-4o-transcribe", "language": "fr", "prompt": "get_current_time"}
    s = await updated(c, ga_input(transcription=transcription))
    assert s["audio"]["input"]["transcription"] == transcription
    beta = await open_client(sim, "beta")
    update = {"input_audio_transcription": {"model": "whisper-1", "language": "de", "prompt": "x"}}
    s = await updated(beta, {"type": "session.update", "session": update})
    assert s["input_audio_transcription"] == update["input_audio_transcription"]
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(
    ("dialect", "transcription", "code", "param"),
    [
        ("ga", {"model": "whisper-1", "language": "english"}, "invalid_value",
         f"{INPUT}.transcription.language"),
        ("ga", {"model": "whisper-1", "language": "en-US"}, "invalid_value",
         f"{INPUT}.transcription.language"),
        ("ga", {"model": "whisper-1", "prompt": 5}, "invalid_value",
         f"{INPUT}.transcription.prompt"),
        ("ga", {"model": "whisper-1", "lang": "en"}, "unknown_parameter",
         f"{INPUT}.transcription.lang"),
        ("beta", {"model": "whisper-1", "language": "EN"}, "invalid_value",
         "session.input_audio_transcription.language"),
        ("beta", {"model": "whisper-1", "keywords": ["a"]}, "unknown_parameter",
         "session.input_audio_transcription.keywords"),
    ],
)  # fmt: skip
async def test_transcription_bad_values(
    sim: Simulator, dialect: str, transcription: dict[str, Any], code: str, param: str
) -> None:
    c = await open_client(sim, dialect)
    if dialect == "ga":
        event = ga_input(transcription=transcription)
    else:
        event = {"type": "session.update", "session": {"input_audio_transcription": transcription}}
    err = await refused(c, event, raw=True)
    assert (err["code"], err["param"]) == (code, param)


@pytest.mark.parametrize("eagerness", ["low", "medium", "high", "auto"])
async def test_semantic_vad_eagerness_echoed(sim: Simulator, eagerness: str) -> None:
    c = await open_client(sim)
    s = await updated(c, ga_input(turn_detection={"type": "semantic_vad", "eagerness": eagerness}))
    assert s["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad",
        "eagerness": eagerness,
        "create_response": True,
        "interrupt_response": True,
    }
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(
    ("turn_detection", "code", "param"),
    [
        ({"type": "semantic_vad", "eagerness": "eager"}, "invalid_value",
         f"{INPUT}.turn_detection.eagerness"),
        ({"type": "semantic_vad", "silence_duration_ms": 300}, "unknown_parameter",
         f"{INPUT}.turn_detection.silence_duration_ms"),
        ({"type": "semantic_vad", "idle_timeout_ms": 5000}, "unknown_parameter",
         f"{INPUT}.turn_detection.idle_timeout_ms"),
        ({"type": "server_vad", "eagerness": "low"}, "unknown_parameter",
         f"{INPUT}.turn_detection.eagerness"),
        ({"type": "server_vad", "idle_timeout_ms": -5}, "invalid_value",
         f"{INPUT}.turn_detection.idle_timeout_ms"),
        ({"type": "server_vad", "idle_timeout_ms": "5s"}, "invalid_value",
         f"{INPUT}.turn_detection.idle_timeout_ms"),
        ({"type": "server_vad", "silence_duration_ms": -1}, "invalid_value",
         f"{INPUT}.turn_detection.silence_duration_ms"),
        ({"type": "speech_vad"}, "invalid_value", f"{INPUT}.turn_detection.type"),
    ],
)  # fmt: skip
async def test_turn_detection_bad_values(
    sim: Simulator, turn_detection: dict[str, Any], code: str, param: str
) -> None:
    c = await open_client(sim)
    err = await refused(c, ga_input(turn_detection=turn_detection), raw=True)
    assert (err["code"], err["param"]) == (code, param)


async def test_idle_timeout_echoed(sim: Simulator) -> None:
    c = await open_client(sim)
    s = await updated(c, ga_input(turn_detection={"type": "server_vad", "idle_timeout_ms": 6000}))
    td = s["audio"]["input"]["turn_detection"]
    assert td["idle_timeout_ms"] == 6000 and td["silence_duration_ms"] == 500
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"truncation": "auto"}, "session.truncation"),
        ({"prompt": {"id": "pmpt_1"}}, "session.prompt"),
        ({"turn_detection": {"type": "server_vad", "idle_timeout_ms": 5000}},
         "session.turn_detection.idle_timeout_ms"),
        ({"output_modalities": ["text"]}, "session.output_modalities"),
    ],
)  # fmt: skip
async def test_beta_rejects_ga_only_fields(
    sim: Simulator, session: dict[str, Any], param: str
) -> None:
    c = await open_client(sim, "beta")
    err = await refused(c, {"type": "session.update", "session": session}, raw=True)
    assert (err["code"], err["param"]) == ("unknown_parameter", param)


async def test_beta_accepts_semantic_vad_with_eagerness(sim: Simulator) -> None:
    c = await open_client(sim, "beta")
    td = {"type": "semantic_vad", "eagerness": "high", "create_response": False}
    s = await updated(c, {"type": "session.update", "session": {"turn_detection": td}})
    assert s["turn_detection"] == {**td, "interrupt_response": True}
    assert_all_sent_valid(sim)


async def test_text_output_modality_streams_text_only(sim: Simulator) -> None:
    c = await open_client(sim)
    s = await updated(c, ga_session(output_modalities=["text"]))
    assert s["output_modalities"] == ["text"]
    await c.send(
        {"type": "conversation.item.create",
         "item": {"type": "message", "role": "user",
                  "content": [{"type": "input_text", "text": "Hi"}]}}
    )  # fmt: skip
    await c.until("conversation.item.done")
    await c.send({"type": "response.create"})
    got = await c.until("rate_limits.updated")
    t = [e["type"] for e in got]
    assert not [x for x in t if "audio" in x]
    assert t.count("response.output_text.delta") == len(
        "You said: Hi. This is the simulator speaking.".split()
    )
    added = next(e for e in got if e["type"] == "response.content_part.added")
    assert added["part"] == {"type": "text", "text": ""}
    done = got[-2]["response"]
    assert done["output_modalities"] == ["text"]
    assert done["output"][0]["content"] == [
        {"type": "output_text", "text": "You said: Hi. This is the simulator speaking."}
    ]
    usage = done["usage"]
    assert usage["output_token_details"]["audio_tokens"] == 0
    assert usage["output_tokens"] == usage["output_token_details"]["text_tokens"] > 0
    # a per-response override back to audio, and a bad one
    await c.send({"type": "response.create", "response": {"output_modalities": ["audio"]}})
    got = await c.until("rate_limits.updated")
    assert "response.output_audio.delta" in [e["type"] for e in got]
    assert got[-2]["response"]["usage"]["output_token_details"]["audio_tokens"] > 0
    bad = {"type": "response.create", "response": {"output_modalities": ["text", "audio"]}}
    err = await refused(c, bad, raw=True)
    assert (err["code"], err["param"]) == ("invalid_value", "response.output_modalities")
    assert_all_sent_valid(sim)
