from __future__ import annotations

import json

import pytest

from realtime_simulator import Simulator
from realtime_simulator.synth import speech_pcm

from .conftest import assert_all_sent_valid, open_client, types
from .test_turns import text_item


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_barge_in_cancels_response(rt_sim: Simulator, dialect: str) -> None:
    c = await open_client(rt_sim, dialect)
    await c.send(text_item("Tell me a story"))
    await c.send({"type": "response.create"})
    delta_type = "response.output_audio.delta" if dialect == "ga" else "response.audio.delta"
    await c.until(delta_type)
    await c.stream(speech_pcm(600))
    got = await c.until("response.done")
    t = types(got)
    assert "input_audio_buffer.speech_started" in t
    assert t.index("input_audio_buffer.speech_started") < t.index("response.done")
    assert "response.content_part.done" in t and "response.output_item.done" in t
    done = got[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert done["output"][0]["status"] == "incomplete"
    # the partial item can be truncated to what was produced; past the end is an error
    item_id = done["output"][0]["id"]
    sent_ms = (
        sum(
            e["delta_bytes"]
            for e in rt_sim.connections[-1].sent
            if e.get("item_id") == item_id and "delta_bytes" in e
        )
        // 48
    )
    await c.send(
        {
            "type": "conversation.item.truncate",
            "event_id": "t1",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": sent_ms + 1,
        }
    )
    got = await c.until("error")
    err = got[-1]["error"]
    assert (
        err["event_id"] == "t1"
        and f"Audio content of {sent_ms}ms is already shorter than {sent_ms + 1}ms"
        in err["message"]
    )
    await c.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 150,
        }
    )
    truncated = (await c.until("conversation.item.truncated"))[-1]
    assert truncated["audio_end_ms"] == 150 and truncated["item_id"] == item_id
    await c.drain(0.2)
    assert_all_sent_valid(rt_sim)


async def test_response_cancel_both_ways(rt_sim: Simulator) -> None:
    c = await open_client(rt_sim)
    await c.send({"type": "response.cancel", "event_id": "x1"})
    err = (await c.recv())["error"]
    assert err["code"] == "response_cancel_not_active" and err["event_id"] == "x1"
    await c.send(text_item("Hello"))
    await c.send({"type": "response.create"})
    created = (await c.until("response.created"))[-1]
    await c.send({"type": "response.create", "event_id": "x2"})
    err = (await c.until("error"))[-1]["error"]
    assert err["code"] == "conversation_already_has_active_response" and err["event_id"] == "x2"
    await c.until("response.output_audio.delta")
    await c.send({"type": "response.cancel", "response_id": created["response"]["id"]})
    got = await c.until("response.done")
    assert got[-1]["response"]["status_details"]["reason"] == "client_cancelled"
    assert "response.output_audio.done" in types(got)
    await c.send({"type": "response.cancel"})
    assert (await c.until("error"))[-1]["error"]["code"] == "response_cancel_not_active"
    assert_all_sent_valid(rt_sim)


async def test_realtime_pacing_is_faster_than_real_time(rt_sim: Simulator) -> None:
    import time

    c = await open_client(rt_sim)
    await c.send(text_item("Hello"))
    await c.send({"type": "response.create"})
    await c.until("response.output_audio.delta")
    t0 = time.monotonic()
    got = await c.until("response.done")
    elapsed = time.monotonic() - t0
    audio_ms = sum(1 for e in got if e["type"] == "response.output_audio.delta") * 200
    assert 0.3 * audio_ms / 1000 < elapsed < 0.8 * audio_ms / 1000


async def test_truncate_valid_and_item_ops(sim: Simulator) -> None:
    c = await open_client(sim, "beta")
    await c.send(text_item("Hello"))
    user = (await c.until("conversation.item.created"))[-1]["item"]
    await c.send({"type": "response.create"})
    got = await c.until("response.done")
    item_id = got[-1]["response"]["output"][0]["id"]
    await c.send(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": 1000,
        }
    )
    assert (await c.until("conversation.item.truncated"))[-1]["audio_end_ms"] == 1000
    await c.send(
        {
            "type": "conversation.item.truncate",
            "item_id": user["id"],
            "content_index": 0,
            "audio_end_ms": 0,
        }
    )
    assert (await c.until("error"))[-1]["error"]["code"] == "item_truncate_invalid_item_id"
    await c.send({"type": "conversation.item.retrieve", "item_id": user["id"]})
    assert (await c.until("conversation.item.retrieved"))[-1]["item"]["id"] == user["id"]
    await c.send({"type": "conversation.item.delete", "item_id": user["id"]})
    assert (await c.until("conversation.item.deleted"))[-1]["item_id"] == user["id"]
    await c.send({"type": "conversation.item.delete", "event_id": "d2", "item_id": user["id"]})
    err = (await c.until("error"))[-1]["error"]
    assert err["code"] == "item_delete_invalid_item_id" and err["event_id"] == "d2"
    assert_all_sent_valid(sim)


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_tool_call_flow(sim: Simulator, dialect: str) -> None:
    c = await open_client(sim, dialect)
    session: dict[str, object] = {"tools": [WEATHER_TOOL], "tool_choice": "auto"}
    if dialect == "ga":
        session["type"] = "realtime"
    await c.send({"type": "session.update", "session": session})
    await c.until("session.updated")
    await c.send(text_item('What is the weather in Paris? Use get_weather {"location": "Paris"}'))
    await c.send({"type": "response.create"})
    got = await c.until("response.done")
    t = types(got)
    assert "response.function_call_arguments.delta" in t
    args_done = next(e for e in got if e["type"] == "response.function_call_arguments.done")
    assert json.loads(args_done["arguments"]) == {"location": "Paris"}
    if dialect == "ga":
        assert args_done["name"] == "get_weather"
    item = got[-1]["response"]["output"][0]
    assert item["type"] == "function_call" and item["call_id"] == args_done["call_id"]
    await c.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "function_call_output",
                "call_id": item["call_id"],
                "output": '{"temp_c": 21}',
            },
        }
    )
    await c.send({"type": "response.create"})
    got = await c.until("response.done")
    reply = got[-1]["response"]["output"][0]["content"][0]["transcript"]
    assert 'The get_weather function returned {"temp_c": 21}.' in reply
    assert_all_sent_valid(sim)


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_invalid_events_echo_event_id(sim: Simulator, dialect: str) -> None:
    c = await open_client(sim, dialect)
    await c.send_raw('{"event_id": "e1"}')
    err = (await c.recv())["error"]
    assert (err["code"], err["event_id"], err["type"]) == (
        "invalid_event",
        "e1",
        "invalid_request_error",
    )
    await c.send_raw('{"type": "bogus.thing", "event_id": "e2"}')
    err = (await c.recv())["error"]
    assert (
        err["code"] == "invalid_event"
        and err["event_id"] == "e2"
        and "bogus.thing" in err["message"]
    )
    await c.send_raw("not json")
    assert (await c.recv())["error"]["code"] == "invalid_json"
    await c.send_raw('{"type": "input_audio_buffer.append", "event_id": "e3"}')
    err = (await c.recv())["error"]
    assert err["code"] == "missing_required_parameter" and err["event_id"] == "e3"
    await c.send_raw('{"type": "input_audio_buffer.append", "event_id": "e4", "audio": "***"}')
    assert (await c.recv())["error"]["event_id"] == "e4"
    # still usable
    await c.send(text_item("hi"))
    await c.recv()
    assert_all_sent_valid(sim)


async def test_record_contents(sim: Simulator) -> None:
    c = await open_client(sim)
    await c.append(bytes(960))
    await c.send({"type": "response.create"})
    await c.until("response.done")
    record = sim.connections[-1]
    append = await record.wait_for("input_audio_buffer.append")
    assert append == {"type": "input_audio_buffer.append", "audio_bytes": 960}
    assert (await record.wait_for("response.create"))["type"] == "response.create"
    deltas = [e for e in record.sent if e["type"] == "response.output_audio.delta"]
    assert deltas and all("delta" not in e and e["delta_bytes"] > 0 for e in deltas)
