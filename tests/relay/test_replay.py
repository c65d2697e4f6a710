"""What a renewed upstream session is given: the conversation so far, in each API's terms,
valid against the installed SDK's models."""

from __future__ import annotations

import pytest

from realtime.kernel.config import load_config
from realtime.kernel.history import History, Snapshot
from realtime.upstream.live_session import INPUT_MESSAGES, INPUT_TOKENS, session_start
from realtime.upstream.realtime_session import replay_items
from tests.simulator.oracle import validate_client_event


def conversation() -> Snapshot:
    history = History()
    history.system("Be brief.")
    history.user("my name is Ada")
    history.answer_delta("item_a-0", "Nice to meet you, Ada.")
    history.answer_done("item_a-0")
    history.user("what time is it")
    history.tool_call("call_1", "get_time", '{"tz":"CET"}')
    history.tool_output("call_1", '"12:00"')
    history.answer_delta("item_b-0", "It is noon and the sun")
    history.answer_heard("item_b", heard_ms=300, sent_ms=1000)
    return history.snapshot()


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_realtime_items_are_the_conversation_in_order(dialect):
    items = replay_items(conversation(), dialect)
    for item in items:
        validate_client_event({"type": "conversation.item.create", "item": item}, dialect)
    kinds = [(i["type"], i.get("role")) for i in items]
    assert kinds == [
        ("message", "system"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
        ("message", "assistant"),
    ]
    assert items[1]["content"] == [{"type": "input_text", "text": "my name is Ada"}]
    answer_type = "output_text" if dialect == "ga" else "text"
    assert items[2]["content"] == [{"type": answer_type, "text": "Nice to meet you, Ada."}]
    assert (items[4]["name"], items[5]["output"]) == ("get_time", '"12:00"')
    assert items[6]["status"] == "incomplete" and items[6]["content"][0]["text"] == "It is"


def test_realtime_items_say_how_many_were_dropped():
    history = History(max_items=2)
    for text in ("one", "two", "three"):
        history.user(text)
    items = replay_items(history.snapshot(), "ga")
    assert "1 oldest messages are not shown" in items[0]["content"][0]["text"]
    assert [i["content"][0]["text"] for i in items[1:]] == ["two", "three"]


def test_gpt_live_starts_with_the_conversation_as_text_input():
    config = load_config({"RELAY_UPSTREAM_API": "live"})
    start = session_start(config, [], conversation())
    validate_client_event(start, "live")
    messages = start["session"]["input"]
    assert [(m["role"], m["content"][0]["text"]) for m in messages] == [
        ("developer", "Be brief."),
        ("user", "my name is Ada"),
        ("assistant", "Nice to meet you, Ada."),
        ("user", "what time is it"),
        (
            "developer",
            'Earlier you called the tool get_time with {"tz":"CET"}; it returned "12:00".',
        ),
        ("assistant", "It is"),
    ]
    assert messages[-1]["status"] == "incomplete"
    assert "input" not in session_start(config, [], History().snapshot())["session"]


def test_gpt_live_gets_the_most_recent_part_that_fits_and_a_note_on_the_rest():
    config = load_config({"RELAY_UPSTREAM_API": "live"})
    many = History()
    for n in range(INPUT_MESSAGES + 20):
        many.user(f"message {n}")
    messages = session_start(config, [], many.snapshot())["session"]["input"]
    assert len(messages) == INPUT_MESSAGES
    assert "21 oldest messages are not included" in messages[0]["content"][0]["text"]
    assert messages[-1]["content"][0]["text"] == f"message {INPUT_MESSAGES + 19}"

    long = History()
    for n in range(8):
        long.user(f"{n} " + "word " * 1500)  # ≈ 1,900 tokens each
    messages = session_start(config, [], long.snapshot())["session"]["input"]
    texts = [m["content"][0]["text"] for m in messages]
    assert texts[0].startswith("This conversation continues") and "5 oldest" in texts[0]
    assert [t[0] for t in texts[1:]] == ["5", "6", "7"]
    assert sum(len(t) for t in texts) // 4 < INPUT_TOKENS
