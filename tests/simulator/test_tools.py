"""The tool-call convention the relay's server-side tools rely on (see planning.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from realtime_simulator import Simulator
from realtime_simulator.planning import example_phrases, mentions, tool_calls

from .conftest import Client, assert_all_sent_valid, open_client, types
from .test_turns import text_item


def tool(name: str) -> dict[str, Any]:
    return {"type": "function", "name": name, "description": name,
            "parameters": {"type": "object", "properties": {}}}  # fmt: skip


TOOLS = [tool("get_current_time"), tool("add_note")]


def calls(text: str, choice: Any = "auto", parallel: bool = True) -> list[tuple[str, Any]]:
    names = ["get_current_time", "add_note"]
    return [(c.name, json.loads(c.arguments)) for c in tool_calls(text, names, choice, parallel)]


def test_arguments_are_the_first_json_object_in_the_words() -> None:
    assert calls('add_note {"text": "buy milk"} and {"text": "eggs"}') == [
        ("add_note", {"text": "buy milk"})
    ]
    assert calls('{"text": "first"} then add_note') == [("add_note", {"text": "first"})]
    assert calls("please add_note now") == [("add_note", {})]
    assert calls("add_note {not json} {[1]}") == [("add_note", {})]
    assert calls('add_note {"a": {"b": [1, 2]}}') == [("add_note", {"a": {"b": [1, 2]}})]


def test_names_match_as_words_spoken_or_written() -> None:
    assert calls("What time is it, use get current time.") == [("get_current_time", {})]
    assert calls("USE GET_CURRENT_TIME!") == [("get_current_time", {})]
    assert calls("get   current\ntime") == [("get_current_time", {})]
    assert calls("forget_current_times and readd_notes") == []
    assert calls('add_note {"text": "get_current_time"}') == [
        ("add_note", {"text": "get_current_time"})
    ]


def test_several_names_give_calls_in_order_of_mention_each_with_its_own_json() -> None:
    text = 'add_note {"text": "milk"} then get current time, then add_note {"text": "again"}'
    assert calls(text) == [("add_note", {"text": "milk"}), ("get_current_time", {})]
    text = 'get_current_time {"tz": "UTC"} and add_note {"text": "x"}'
    assert calls(text) == [("get_current_time", {"tz": "UTC"}), ("add_note", {"text": "x"})]
    assert calls(text, parallel=False) == [("get_current_time", {"tz": "UTC"})]


def test_example_phrases_in_the_description_call_the_tool() -> None:
    clock = tool("get_current_time")
    clock["description"] = 'The time.\nExamples: "what time is it", "what\'s the time"'
    phrases = {"get_current_time": example_phrases(clock)}
    names = ["get_current_time", "add_note"]

    def by_example(text: str) -> list[tuple[str, Any]]:
        found = tool_calls(text, names, "auto", True, phrases)
        return [(c.name, json.loads(c.arguments)) for c in found]

    assert by_example("what time is it") == [("get_current_time", {})]
    assert by_example("Hey, WHAT time   is it?") == [("get_current_time", {})]
    assert by_example("what's the time") == [("get_current_time", {})]
    assert by_example("what s the time") == [("get_current_time", {})]  # a transcript's spelling
    assert by_example('what time is it {"timezone": "Asia/Tokyo"}') == [
        ("get_current_time", {"timezone": "Asia/Tokyo"})
    ]
    # Named again after the phrase: its JSON still belongs to the same call.
    assert by_example('what time is it? use get_current_time {"timezone": "UTC"}') == [
        ("get_current_time", {"timezone": "UTC"})
    ]
    assert by_example("somewhat time is it") == []  # whole words only
    assert by_example("what time is items") == []
    assert by_example('add_note {"text": "what time is it"}') == [
        ("add_note", {"text": "what time is it"})
    ]
    assert calls("what time is it") == []  # without the examples line: only names count
    # Only the quoted phrases on a line that starts "Examples:".
    assert example_phrases({"description": 'Say "hello" to call.\nexamples: "a b", "c"'}) == [
        "a b",
        "c",
    ]
    assert example_phrases({"description": "No examples here."}) == []
    assert example_phrases({"name": "x"}) == []


def test_overlapping_names_prefer_the_longest() -> None:
    assert mentions("use get time zone now", ["get_time", "get_time_zone"]) == [
        (4, "get_time_zone")
    ]
    assert mentions("get_time then get_time_zone", ["get_time_zone", "get_time"]) == [
        (0, "get_time"),
        (14, "get_time_zone"),
    ]


def test_tool_choice() -> None:
    assert calls("add_note", choice="none") == []
    assert calls("hello", choice="required") == [("get_current_time", {})]
    forced = {"type": "function", "name": "add_note"}
    assert calls('get_current_time and add_note {"x": 1}', choice=forced) == [
        ("add_note", {"x": 1})
    ]
    assert calls("hello", choice=forced) == [("add_note", {})]
    assert calls("add_note", choice={"type": "function", "name": "missing"}) == []


async def setup(c: Client, text_only: bool = False, **session: Any) -> None:
    if c.dialect == "ga":
        session["type"] = "realtime"
        if text_only:
            session["output_modalities"] = ["text"]
    elif text_only:
        session["modalities"] = ["text"]
    await c.send({"type": "session.update", "session": {"tools": TOOLS, **session}})
    await c.until("session.updated")


async def respond(c: Client, text: str | None = None) -> list[dict[str, Any]]:
    if text is not None:
        await c.send(text_item(text))
        await c.until(
            "conversation.item.done" if c.dialect == "ga" else "conversation.item.created"
        )
    await c.send({"type": "response.create"})
    return await c.until("rate_limits.updated")


def output_item(call_id: str, output: str) -> dict[str, Any]:
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return {"type": "conversation.item.create", "item": item}


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_parallel_calls_in_one_response_then_outputs_quoted(
    sim: Simulator, dialect: str
) -> None:
    c = await open_client(sim, dialect)
    await setup(c)
    got = await respond(c, 'What time is it? Use get_current_time, and add_note {"text": "milk"}')
    t = types(got)
    added = "conversation.item.added" if dialect == "ga" else "conversation.item.created"
    per_call = ["response.output_item.added", added,
                "response.function_call_arguments.delta", "response.function_call_arguments.delta",
                "response.function_call_arguments.done", "response.output_item.done"]  # fmt: skip
    if dialect == "ga":
        per_call.append("conversation.item.done")
    assert t == ["response.created", *per_call, *per_call, "response.done", "rate_limits.updated"]
    done = got[-2]["response"]
    assert done["status"] == "completed"
    output = done["output"]
    assert [(i["type"], i["name"], json.loads(i["arguments"])) for i in output] == [
        ("function_call", "get_current_time", {}),
        ("function_call", "add_note", {"text": "milk"}),
    ]
    assert [e["output_index"] for e in got if e["type"] == "response.output_item.added"] == [0, 1]
    assert len({i["call_id"] for i in output}) == 2
    args_done = [e for e in got if e["type"] == "response.function_call_arguments.done"]
    assert [e["call_id"] for e in args_done] == [i["call_id"] for i in output]
    assert done["usage"]["output_tokens"] > 0
    await c.send(output_item(output[0]["call_id"], "It is 12:00 UTC."))
    await c.send(output_item(output[1]["call_id"], '{"saved": true, "id": 7}'))
    got = await respond(c)
    part = got[-2]["response"]["output"][0]["content"][0]
    said = "".join(e["delta"] for e in got if e["type"].endswith("audio_transcript.delta"))
    assert (
        part["transcript"]
        == said
        == (
            "The get_current_time function returned It is 12:00 UTC.. "
            'The add_note function returned {"saved": true, "id": 7}. That is the answer.'
        )
    )
    assert any(e["type"].endswith("audio.delta") for e in got)
    assert_all_sent_valid(sim)


async def test_text_only_reply_quotes_the_output(sim: Simulator) -> None:
    c = await open_client(sim)
    await setup(c, text_only=True)
    got = await respond(c, "add note please")
    call = got[-2]["response"]["output"][0]
    assert (call["name"], call["arguments"]) == ("add_note", "{}")
    output = "line one\nline  two {with} odd spacing "
    await c.send(output_item(call["call_id"], output))
    got = await respond(c)
    assert "response.output_audio.delta" not in types(got)
    text = "".join(e["delta"] for e in got if e["type"] == "response.output_text.delta")
    assert f"The add_note function returned {output}." in text
    assert got[-2]["response"]["output"][0]["content"][0]["text"] == text
    assert_all_sent_valid(sim)


async def test_parallel_tool_calls_false_and_tool_choice(sim: Simulator) -> None:
    c = await open_client(sim)
    await setup(c, text_only=True, parallel_tool_calls=False)
    got = await respond(c, "get_current_time and add_note")
    assert [i["name"] for i in got[-2]["response"]["output"]] == ["get_current_time"]
    await setup(c, text_only=True, parallel_tool_calls=True, tool_choice="none")
    got = await respond(c, "get_current_time and add_note")
    assert got[-2]["response"]["output"][0]["type"] == "message"
    forced = {"type": "function", "name": "add_note"}
    await c.send(text_item("what time is it? get_current_time"))
    await c.send({"type": "response.create", "response": {"tool_choice": forced}})
    got = await c.until("rate_limits.updated")
    assert [i["name"] for i in got[-2]["response"]["output"]] == ["add_note"]
    assert_all_sent_valid(sim)
