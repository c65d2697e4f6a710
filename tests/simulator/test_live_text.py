"""GPT-Live context appends: typed text (commentary), instructions, thinking."""

from __future__ import annotations

import json

import pytest

from realtime_simulator import Simulator

from .conftest import assert_all_sent_valid
from .live_client import open_live, responses_delegation, spoken, utterance

PING = "You said: ping. This is the simulator speaking."


async def test_typed_text_as_commentary_is_acknowledged_and_answered(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start()
    await c.speak(bytes(48 * 1500))  # 1.5 s into the session
    await c.say_typed("What are your opening hours?", event_id="typed_1")
    appended = await c.recv()
    assert appended["type"] == "session.commentary.appended"
    assert appended["client_event_id"] == "typed_1"
    assert appended["start_ms"] == appended["end_ms"] == 1500
    reply = "You said: What are your opening hours?. This is the simulator speaking."
    events = await c.until_spoken(reply)
    first = next(e for e in events if e["type"] == "session.output_transcript.delta")
    assert first["start_ms"] == 1500
    assert sim.connections[-1].received[-1]["content"] == "What are your opening hours?"
    assert_all_sent_valid(sim)


@pytest.mark.parametrize("kind", ["instructions", "thinking"])
async def test_instructions_and_thinking_are_acknowledged_but_silent(
    sim: Simulator, kind: str
) -> None:
    c = await open_live(sim)
    await c.start()
    await c.send(
        {
            "type": f"session.{kind}.append",
            "event_id": "a1",
            "content": "The user typed: hello",
            "delegation_id": None,
        }
    )
    appended = await c.recv()
    assert (appended["type"], appended["client_event_id"]) == (f"session.{kind}.appended", "a1")
    assert appended["start_ms"] == appended["end_ms"] == 0
    await c.say_typed("ping")  # in order: anything the append made the model say comes first
    events = await c.until_spoken(PING)
    assert spoken(events) == PING
    await c.until("session.usage.updated")  # PING is over
    assert [e["kind"] for e in sim.connections[-1].spoken] == ["commentary"]
    assert_all_sent_valid(sim)


async def test_append_validation(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start()
    cases = [
        ({"content": "x"}, "missing_required_parameter", "delegation_id"),
        ({"content": "word " * 600, "delegation_id": None}, "invalid_value", "content"),
        ({"content": ["x"], "delegation_id": None}, "invalid_type", "content"),
        ({"content": "x", "delegation_id": "dlg_unknown"}, "invalid_value", "delegation_id"),
    ]
    for fields, code, param in cases:
        event = {"type": "session.commentary.append", "event_id": "bad", **fields}
        await c.send_raw(json.dumps(event))
        error = await c.recv()
        assert (error["error"]["code"], error["error"]["param"]) == (code, param), error
        assert error["client_event_id"] == error["error"]["client_event_id"] == "bad"
    assert_all_sent_valid(sim)


async def test_delegation_ids_are_refused_under_responses_delegation(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(delegation=responses_delegation())
    await c.send({"type": "session.thinking.append", "content": "x", "delegation_id": "dlg_1"})
    error = (await c.recv())["error"]
    assert (error["code"], error["param"]) == ("invalid_value", "delegation_id")
    assert "Responses delegation" in error["message"]


async def test_speech_and_typed_text_share_one_voice(sim: Simulator) -> None:
    """A typed message while the model answers speech is answered after it, not over it."""
    c = await open_live(sim)
    await c.start()
    await c.speak(utterance(600))
    await c.say_typed("ping")
    speech_reply = "I heard 0.56 seconds of speech. This is the simulator speaking."
    events = await c.until_spoken(PING)
    assert spoken(events) == speech_reply + " " + PING
    while sum(e["type"] == "session.usage.updated" for e in c.events) < 2:  # both answers over
        await c.recv()
    entries = sim.connections[-1].spoken
    assert [e["kind"] for e in entries] == ["reply", "commentary"]
    assert entries[1]["start_ms"] == entries[0]["end_ms"]
