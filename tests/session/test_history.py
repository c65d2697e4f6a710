"""The conversation as the model knows it: what a renewed upstream session is given."""

from __future__ import annotations

from realtime.kernel.history import History, Message, ToolExchange


def test_messages_answers_and_tools_in_the_order_they_happened():
    history = History()
    history.system("Speak French.")
    history.user("what time is it")
    history.tool_call("call_1", "get_time", '{"tz":"CET"}')
    history.tool_output("call_1", '"12:00"')
    history.answer_delta("item_a-0", "It is ")
    history.user("hurry up")  # typed while the answer streams: it comes after the answer
    history.answer_delta("item_a-0", "noon.")
    history.answer_done("item_a-0")
    assert history.items() == [
        Message("system", "Speak French."),
        Message("user", "what time is it"),
        ToolExchange("call_1", "get_time", '{"tz":"CET"}', '"12:00"'),
        Message("assistant", "It is noon."),
        Message("user", "hurry up"),
    ]


def test_an_answer_cut_by_a_barge_in_keeps_what_was_heard_at_a_word_boundary():
    history = History()
    history.user("tell me a story")
    history.answer_delta("item_a-0", "Once upon a time there was a very long story")
    history.answer_heard("item_a", heard_ms=500, sent_ms=2000)  # a quarter was heard
    (_, answer) = history.items()
    assert answer == Message("assistant", "Once upon a", complete=False)
    history.answer_delta("item_a-0", " that goes on")  # late text of the cut answer: kept out
    assert [m.text for m in history.items()] == ["tell me a story", "Once upon a"]


def test_an_answer_nobody_heard_is_forgotten():
    history = History()
    history.user("hi")
    history.answer_delta("item_a-0", "Hello there")
    history.answer_heard("item_a", heard_ms=0, sent_ms=900)
    assert history.items() == [Message("user", "hi")]


def test_when_the_upstream_goes_away_answers_are_kept_as_far_as_they_went():
    history = History()
    history.user("go on")
    history.answer_delta("item_a-0", "First part")
    history.tool_call("call_9", "slow_tool", "{}")  # no output: the model never saw one
    history.answers_cut()
    assert history.items() == [
        Message("user", "go on"),
        Message("assistant", "First part", complete=False),
    ]


def test_bounded_oldest_first_with_a_count_of_what_was_dropped():
    history = History(max_items=3, max_chars=1000)
    for n in range(5):
        history.user(f"message {n}")
    assert [m.text for m in history.items()] == ["message 2", "message 3", "message 4"]
    assert history.dropped == 2
    by_size = History(max_items=100, max_chars=25)
    for n in range(4):
        by_size.user(f"ten chars{n}")
    assert [m.text for m in by_size.items()] == ["ten chars2", "ten chars3"]
    assert by_size.dropped == 2


def test_blank_text_is_no_message():
    history = History()
    history.user("   ")
    history.system("")
    assert history.items() == []
