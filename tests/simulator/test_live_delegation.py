"""GPT-Live delegation: Responses delegation with function tools, and client delegation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from realtime_simulator import Simulator

from .conftest import assert_all_sent_valid
from .live_client import (
    WEATHER_TOOL,
    LiveClient,
    nested,
    open_live,
    responses_delegation,
    spoken,
    utterance,
)

TIME_TOOL = {"type": "function", "name": "get_time", "parameters": {"type": "object"}}
ACK = "One moment, let me check that."
CALL_RESPONSE = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


def calls(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e["item"]
        for e in nested(events)
        if e["type"] == "response.output_item.done" and e["item"]["type"] == "function_call"
    ]


def completed(event: dict[str, Any]) -> bool:
    return event["type"] == "response.event" and event["event"]["type"] == "response.completed"


async def answer(c: LiveClient, items: list[dict[str, Any]], outputs: list[str]) -> None:
    for item, output in zip(items, outputs, strict=True):
        out = {"type": "function_call_output", "call_id": item["call_id"], "output": output}
        await c.send({"type": "response.item.create", "item": out})
    await c.send({"type": "response.create", "event_id": "continue"})


async def test_function_call_round_trip_from_speech(sim: Simulator) -> None:
    sim.next_live_transcripts(['What is the weather? get_weather {"city": "Paris"}'])
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL))
    await c.speak(utterance(1200))
    first = await c.until(completed)
    created = next(e for e in first if e["type"] == "session.delegation.created")
    delegation = created["delegation"]
    assert (delegation["target"], delegation["type"], created["offset_ms"]) == (
        "responses", "delegation", 1680,
    )  # fmt: skip
    stream = nested(first)
    assert [e["type"] for e in stream] == CALL_RESPONSE
    assert [e["sequence_number"] for e in stream] == list(range(len(CALL_RESPONSE)))
    assert stream[0]["response"]["id"] == delegation["response_id"]
    assert {e["delegation_id"] for e in first if e["type"] == "response.event"} == {
        delegation["id"]
    }
    snapshot = stream[-1]["response"]
    assert (snapshot["status"], snapshot["output"], snapshot["tools"]) == ("completed", [], [])
    assert snapshot["instructions"] is None and snapshot["usage"]["total_tokens"] > 0
    (call,) = calls(first)
    assert (call["name"], call["arguments"], call["status"]) == (
        "get_weather", '{"city": "Paris"}', "completed",
    )  # fmt: skip
    deltas = "".join(e["delta"] for e in stream if e["type"].endswith("arguments.delta"))
    assert deltas == call["arguments"]

    await answer(c, [call], ["18 degrees and sunny"])
    second = await c.until(completed)
    stream2 = nested(second)
    assert stream2[0]["response"]["previous_response_id"] == snapshot["id"]
    assert stream2[0]["response"]["id"] != snapshot["id"]
    text = "The get_weather function returned 18 degrees and sunny."
    assert "".join(e["delta"] for e in stream2 if e["type"] == "response.output_text.delta") == text
    assert {e["delegation_id"] for e in second if e["type"] == "response.event"} == {
        delegation["id"]
    }
    await c.until_spoken(text)
    assert spoken(c.events).startswith(ACK)  # the automatic acknowledgement came first
    assert sum(e["type"] == "session.delegation.created" for e in c.events) == 1
    assert_all_sent_valid(sim)


async def test_parallel_calls_need_every_output(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL, TIME_TOOL))
    await c.say_typed('get_time {"tz": "CET"} and get weather {"city": "Oslo"}')
    items = calls(await c.until(completed))
    assert [(i["name"], i["arguments"]) for i in items] == [
        ("get_time", '{"tz": "CET"}'),
        ("get_weather", '{"city": "Oslo"}'),
    ]
    await answer(c, items[:1], ["12:00"])
    error = (await c.until("error"))[-1]
    assert error["error"]["code"] == "function_call_output_missing"
    assert (
        error["client_event_id"] == "continue" and items[1]["call_id"] in error["error"]["message"]
    )
    await answer(c, items[1:], ["rain"])
    text = "The get_time function returned 12:00. The get_weather function returned rain."
    await c.until_spoken(text)
    assert_all_sent_valid(sim)


async def test_one_call_per_response_without_parallel_tool_calls(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(
        delegation=responses_delegation(WEATHER_TOOL, TIME_TOOL, parallel_tool_calls=False)
    )
    await c.say_typed("get_weather and get_time please")
    first = calls(await c.until(completed))
    await answer(c, first, ["sunny"])
    second_events = await c.until(completed)
    second = calls(second_events)
    assert [i["name"] for i in first + second] == ["get_weather", "get_time"]
    assert [i["arguments"] for i in first + second] == ["{}", "{}"]
    assert nested(second_events)[-1]["response"]["parallel_tool_calls"] is False
    await answer(c, second, ["noon"])
    await c.until_spoken(
        "The get_weather function returned sunny. The get_time function returned noon."
    )
    assert_all_sent_valid(sim)


async def test_typed_text_without_a_tool_name_is_just_answered(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL))
    await c.say_typed("How are you?")
    events = await c.until_spoken("You said: How are you?. This is the simulator speaking.")
    assert not any(e["type"].startswith(("session.delegation", "response.")) for e in events)


async def test_tool_choice_none_delegates_without_calls(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL, tool_choice="none"))
    await c.say_typed("get_weather now")
    events = await c.until(completed)
    assert calls(events) == []
    items = [e["item"]["type"] for e in nested(events) if e["type"] == "response.output_item.done"]
    assert items == ["message"]
    await c.until_spoken("Here is what I know about that: get_weather now")


async def test_backend_commands_are_checked(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL))
    output = {"type": "function_call_output", "call_id": "call_nope", "output": "x"}
    await c.send({"type": "response.item.create", "event_id": "i1", "item": output})
    error = (await c.recv())["error"]
    assert (error["code"], error["param"], error["client_event_id"]) == (
        "invalid_value", "item.call_id", "i1",
    )  # fmt: skip
    await c.say_typed("get_weather")
    (call,) = calls(await c.until(completed))
    await answer(c, [call], ["ok"])
    await c.send({"type": "response.item.create", "item": {**output, "call_id": call["call_id"]}})
    errors = [e for e in await c.until("error") if e["type"] == "error"]
    assert "no function call" in errors[-1]["error"]["message"].lower()
    client = await open_live(sim)
    await client.start()
    await client.send({"type": "response.create"})
    error = (await client.recv())["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "type")
    assert_all_sent_valid(sim)


async def test_application_started_response_has_no_delegation(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL))
    message = {"role": "user", "content": "Summarise the call."}
    await c.send({"type": "response.item.create", "item": message})
    await c.send({"type": "response.create"})
    events = await c.until(completed)
    assert {e["delegation_id"] for e in events if e["type"] == "response.event"} == {None}
    assert not any(e["type"] == "session.delegation.created" for e in events)
    await c.until_spoken("Here is what I know about that: Summarise the call.")
    assert_all_sent_valid(sim)


async def test_client_delegation(sim: Simulator) -> None:
    sim.next_live_transcripts(["Can you check my order status?"])
    c = await open_live(sim)
    session = await c.start()  # delegation omitted: client delegation
    assert session["delegation"]["type"] == "client"
    await c.speak(utterance(1200))
    events = await c.until("session.delegation.created")
    delegation = events[-1]["delegation"]
    assert delegation["target"] == "client" and "response_id" not in delegation
    assert events[-1]["offset_ms"] == 1680
    await c.until_spoken(ACK)
    thinking = {"type": "session.thinking.append", "content": "Looking it up.", "event_id": "t1"}
    await c.send(thinking | {"delegation_id": delegation["id"]})
    assert (await c.until("session.thinking.appended"))[-1]["client_event_id"] == "t1"
    result = "Your order shipped on Tuesday."
    await c.send(
        {"type": "session.commentary.append", "content": result, "delegation_id": delegation["id"]}
    )
    await c.until_spoken(result)
    assert spoken(c.events) == ACK + " " + result  # the thinking was silent; one transcript
    assert_all_sent_valid(sim)


async def test_appended_context_cancels_a_pending_acknowledgement(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(delegation={"type": "client", "acknowledgement_delay_ms": 200})
    await c.say_typed("please check the stock")
    await c.until_spoken(ACK)  # control: with nothing appended, the acknowledgement comes
    await c.say_typed("and check the price")
    delegation = (await c.until("session.delegation.created"))[-1]["delegation"]
    await c.send(
        {
            "type": "session.thinking.append",
            "content": "Working.",
            "delegation_id": delegation["id"],
        }
    )
    await c.until("session.thinking.appended")
    await asyncio.sleep(0.4)  # past the 200 ms the cancelled acknowledgement would have waited
    await c.say_typed("ping")
    await c.until_spoken("You said: ping. This is the simulator speaking.")
    assert spoken(c.events) == ACK + " You said: ping. This is the simulator speaking."
    await c.until("session.usage.updated")  # "ping" is over
    received = [e["type"] for e in sim.connections[-1].received]
    assert received.count("session.commentary.append") == 3
    kinds = [e["kind"] for e in sim.connections[-1].spoken]
    assert kinds == ["acknowledgement", "commentary"]


async def test_arguments_come_from_the_first_json_object(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL))
    expected = []
    for words, arguments in (
        ('{"city": "Rome"} is where get_weather should look', '{"city": "Rome"}'),
        ("get_weather [1, 2] {not json} {}", "{}"),
    ):
        await c.say_typed(words)
        (call,) = calls(await c.until(completed))
        assert call["arguments"] == arguments
        await answer(c, [call], ["ok"])
        expected.append("The get_weather function returned ok.")
        await c.until_spoken(expected[-1])
    assert_all_sent_valid(sim)


async def test_typed_text_in_the_relays_wrapper_keeps_its_json_arguments(sim: Simulator) -> None:
    """The relay passes typed text as ``The user typed: "…"`` commentary, where the JSON's
    quotes are escaped: the delegation reads the words the user typed."""
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL))
    typed = json.dumps('use get_weather {"city": "Oslo"}')
    await c.say_typed(f"The user typed: {typed}. Reply to it now; do not read it back.")
    (call,) = calls(await c.until(completed))
    assert (call["name"], json.loads(call["arguments"])) == ("get_weather", {"city": "Oslo"})
    assert_all_sent_valid(sim)


async def test_an_example_phrase_in_the_description_delegates(sim: Simulator) -> None:
    clock = {**TIME_TOOL, "description": 'The time.\nExamples: "what time is it"'}
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL, clock))
    typed = json.dumps('So... what TIME is it in {"tz": "Asia/Tokyo"}?')
    await c.say_typed(f"The user typed: {typed}. Reply to it now; do not read it back.")
    (call,) = calls(await c.until(completed))
    assert (call["name"], json.loads(call["arguments"])) == ("get_time", {"tz": "Asia/Tokyo"})
    await answer(c, [call], ["noon"])
    await c.until_spoken("The get_time function returned noon.")
    assert_all_sent_valid(sim)
