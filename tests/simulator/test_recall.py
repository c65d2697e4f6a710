"""The recall convention ("what did I say" quotes the earlier user messages, in order) and
the drop in the middle of the n-th answer, on both API families; every event checked
against the SDK's models."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from realtime_simulator import Faults, Simulator

from .conftest import assert_all_sent_valid, open_client
from .live_client import open_live, spoken, utterance
from .test_turns import text_item


def transcript(events: list[dict]) -> str:
    return "".join(
        e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
    )


async def ask(client, text: str) -> str:
    await client.send(text_item(text))
    await client.send({"type": "response.create"})
    return transcript(await client.until("response.done"))


async def test_realtime_recall_quotes_earlier_user_messages_in_order(sim: Simulator) -> None:
    c = await open_client(sim)
    assert "You have not said anything before this." in await ask(c, "What did I say?")
    await ask(c, "my name is Ada")
    # Items a relay replays into a new session count like the ones said in it.
    await c.send(
        {
            "type": "conversation.item.create",
            "item": {"type": "message", "role": "assistant", "status": "incomplete",
                     "content": [{"type": "output_text", "text": "Hello Ada"}]},
        }
    )  # fmt: skip
    reply = await ask(c, "what did I just say")
    assert reply.startswith('Earlier you said: "What did I say?", then "my name is Ada".')
    assert_all_sent_valid(sim)


async def test_live_recall_covers_startup_input_typed_text_and_speech(sim: Simulator) -> None:
    sim.next_live_transcripts(["I like tea"])
    c = await open_live(sim)
    await c.start(
        input=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        ]
    )
    await c.speak(utterance(1200))
    await c.until_spoken("You said: I like tea. This is the simulator speaking.")
    await c.say_typed('The user typed: "What did I say?". Reply to it now; do not read it back.')
    expected = 'Earlier you said: "hi", then "I like tea". This is the simulator speaking.'
    events = await c.until_spoken(expected)
    assert spoken(events).strip() == expected
    assert_all_sent_valid(sim)


async def test_live_startup_input_over_the_token_cap_is_refused(sim: Simulator) -> None:
    c = await open_live(sim)
    message = {"role": "user", "content": [{"type": "input_text", "text": "word " * 4000}]}
    await c.send({"type": "session.start", "session": {"model": "gpt-live-1",
                                                        "input": [message, message]}})  # fmt: skip
    error = await c.recv()
    assert error["type"] == "error" and error["error"]["param"] == "session.input"
    assert "8192" in error["error"]["message"]


async def test_realtime_drop_in_the_middle_of_the_second_answer(sim: Simulator) -> None:
    sim.next_faults(Faults(close_mid_response_n=2))
    c = await open_client(sim)
    assert "my name is Ada" in await ask(c, "my name is Ada")
    with pytest.raises(ConnectionClosed):
        await ask(c, "and now")
    assert c.ws.close_code == 1011
    assert_all_sent_valid(sim)


async def test_live_drop_in_the_middle_of_the_second_answer(sim: Simulator) -> None:
    c = await open_live(sim, query="sim_close_mid_response_n=2")
    await c.start()
    await c.say_typed("first")
    await c.until_spoken("You said: first. This is the simulator speaking.")
    await c.say_typed("second")
    with pytest.raises(ConnectionClosed):
        await c.until(lambda event: False)
    assert c.ws.close_code == 1011
    said = [entry["said"] for entry in sim.connections[-1].spoken]
    assert said == ["You said: first. This is the simulator speaking."]  # the second: cut
    assert_all_sent_valid(sim)
