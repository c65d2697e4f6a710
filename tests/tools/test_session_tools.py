"""Tools in a live session (Realtime API, simulator): calls, results, errors, barge-in."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.extensions.policy import SessionPolicy
from realtime.kernel.config import load_config
from realtime.models import Note, RealtimeSession
from realtime.ops.embedded import LoopThread
from realtime_simulator import Simulator
from tests.relay.conftest import Client, configure, relay_tasks, use_config
from tests.tools import sample_tools

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relay_config")]


def tool_lines(client: Client, name: str | None = None) -> list[dict[str, Any]]:
    return [m for m in client.of("tool_call") if name is None or m["name"] == name]


def outputs_sent(simulator: Any) -> list[dict[str, Any]]:
    """The function_call_output items the relay gave the model (either API family)."""
    return [
        e["item"]
        for e in simulator.connections[-1].received
        if e["type"] in ("conversation.item.create", "response.item.create")
        and e["item"].get("type") == "function_call_output"
    ]


async def until_answer_with(client: Client, words: str, timeout: float = 15) -> str:
    """The assistant's text so far, once it contains ``words`` (either API family)."""
    async with asyncio.timeout(timeout):
        while words not in (text := "".join(d["delta"] for d in client.of("text_delta"))):
            await client.next(timeout)
    return text


async def tool_ended(client: Client, name: str) -> dict[str, Any]:
    """The notice that a call of this tool finished (done or error), waiting for it."""
    while True:
        ended = [m for m in tool_lines(client, name) if m["status"] != "started"]
        if ended:
            return ended[-1]
        await client.until(type="tool_call")


async def answer_text(client: Client, count: int) -> str:
    await client.until_count("response_done", count, timeout=15)
    return "".join(d["delta"] for d in client.of("text_delta"))


@pytest.mark.both_apis
async def test_a_tool_call_round_trip_with_a_spoken_answer(simulator, upstream_api):
    configure(tools="examples")
    client = Client()
    await client.connect()
    session = simulator.connections[-1].received[0]["session"]
    # Realtime API: the session's tools; GPT-Live: the delegated backend's.
    declared = (
        session["tools"]
        if upstream_api == "realtime"
        else session["delegation"]["responses"]["tools"]
    )
    assert {t["name"] for t in declared} == {"get_current_time", "add_note", "list_notes"}
    await client.send_json(
        {"type": "user_message", "text": "what time is it - use get_current_time"}
    )
    done = await tool_ended(client, "get_current_time")
    text = await until_answer_with(client, done["result"]["iso"])  # the answer speaks it
    started, done = tool_lines(client, "get_current_time")
    assert started["status"] == "started" and done["status"] == "done"
    assert done["call_id"] == started["call_id"] and done["result"]["timezone"] == "UTC"
    assert done["result"]["iso"] in text  # the answer speaks the tool's result
    assert len(client.audio) > 0
    [output] = outputs_sent(simulator)
    assert output["call_id"] == done["call_id"] and json.loads(output["output"])["iso"]
    if upstream_api == "live":  # the delegated response goes on once the output is there
        kinds = [e["type"] for e in simulator.connections[-1].received]
        assert kinds.index("response.item.create") < kinds.index("response.create")
    await client.close()
    row = await sync_to_async(RealtimeSession.objects.get)()
    assert (row.tool_calls, row.tool_errors) == (1, 0)


@pytest.mark.both_apis
async def test_an_example_phrase_calls_the_tool_and_typed_json_is_its_arguments(
    simulator, upstream_api
):
    """What a new user types first: "what time is it" (get_current_time's example phrase,
    published in its description), then a call with arguments."""
    configure(tools="examples")
    client = Client()
    await client.connect()
    session = simulator.connections[-1].received[0]["session"]
    declared = session["tools"] if upstream_api == "realtime" else (
        session["delegation"]["responses"]["tools"]
    )  # fmt: skip
    clock = next(t for t in declared if t["name"] == "get_current_time")
    assert '\nExamples: "what time is it"' in clock["description"]
    await client.send_json({"type": "user_message", "text": "What time is it?"})
    done = await tool_ended(client, "get_current_time")
    assert done["status"] == "done" and done["result"]["timezone"] == "UTC"
    await until_answer_with(client, done["result"]["iso"])
    await client.close()

    client = Client()
    await client.connect()
    text = 'use get_current_time {"timezone":"Asia/Tokyo"}'
    await client.send_json({"type": "user_message", "text": text})
    done = await tool_ended(client, "get_current_time")
    assert done["arguments"] == {"timezone": "Asia/Tokyo"}
    assert done["result"]["timezone"] == "Asia/Tokyo"
    await until_answer_with(client, done["result"]["iso"])
    await client.close()


async def test_parallel_calls_are_answered_together(simulator):
    configure(tools="examples")
    client = Client()
    await client.connect()
    await client.send_json(
        {
            "type": "user_message",
            "text": 'get_current_time {"timezone": "Europe/Paris"} and list_notes please',
        }
    )
    text = await answer_text(client, 2)
    assert "Europe/Paris" in text
    assert {m["name"] for m in tool_lines(client) if m["status"] != "started"} == {
        "get_current_time",
        "list_notes",
    }
    # Notes need a signed-in user: refused, and the model is told so.
    [notes] = [m for m in tool_lines(client, "list_notes") if m["status"] != "started"]
    assert notes["status"] == "error" and notes["error"] == "refused"
    assert "signed-in user" in text
    creates = [e["type"] for e in simulator.connections[-1].received]
    assert creates.count("response.create") == 2  # one answer for both outputs
    assert len(outputs_sent(simulator)) == 2
    await client.close()


async def test_a_signed_in_users_notes_are_kept_and_read_back_in_a_later_session(simulator):
    configure(tools="examples")
    ann = await sync_to_async(get_user_model().objects.create_user)("ann", password="pw")
    client = Client(user=ann)
    await client.connect()
    await client.send_json({"type": "user_message", "text": 'add_note {"text": "buy oat milk"}'})
    await answer_text(client, 2)
    assert tool_lines(client, "add_note")[-1]["status"] == "done"
    await client.close()
    assert await sync_to_async(Note.objects.filter(user=ann, text="buy oat milk").count)() == 1

    later = Client(user=ann)
    await later.connect()
    await later.send_json({"type": "user_message", "text": "use list_notes"})
    assert "buy oat milk" in await answer_text(later, 2)
    await later.close()


@pytest.mark.both_apis
async def test_a_timeout_and_an_exception_become_tool_errors_the_model_can_speak_about(
    simulator, upstream_api
):
    configure(tools="tests.tools.sample_tools")
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "slow_lookup and broken_lookup"})
    text = await until_answer_with(client, "broken_lookup function returned")
    ended = {m["name"]: m for m in tool_lines(client) if m["status"] != "started"}
    assert ended["slow_lookup"]["error"] == "timeout"
    assert ended["broken_lookup"]["error"] == "failed"
    outputs = {o["call_id"]: json.loads(o["output"]) for o in outputs_sent(simulator)}
    assert {o["error"] for o in outputs.values()} == {"timeout", "failed"}
    assert "hunter2" not in json.dumps(outputs) and "hunter2" not in text
    assert client.of("error") == []  # the session goes on
    await client.send_json({"type": "user_message", "text": "still there?"})
    await until_answer_with(client, "still there?")
    await client.close()
    row = await sync_to_async(RealtimeSession.objects.get)()
    assert (row.tool_calls, row.tool_errors) == (2, 2)


async def test_interrupt_cancels_pending_calls_and_their_results_are_never_sent(simulator):
    configure(tools="tests.tools.sample_tools", tool_timeout_s=10)
    client = Client()
    await client.connect()
    sample_tools.STARTED.clear()
    await client.send_json({"type": "user_message", "text": 'slow_lookup {"seconds": 0.25}'})
    await client.until(action="response_done")  # the answer that asked for the call
    await client.send_json({"type": "interrupt"})
    ended = await tool_ended(client, "slow_lookup")
    assert (ended["status"], ended["error"]) == ("error", "cancelled")
    await asyncio.sleep(0.5)  # past the moment the call would have finished
    assert sample_tools.STARTED and outputs_sent(simulator) == []
    assert len(client.of("control", "response_done")) == 1  # no answer for a dropped call
    await client.close()
    assert relay_tasks() == []


@pytest.mark.both_apis
async def test_a_tool_runs_with_the_sessions_user(simulator):
    configure(tools="tests.tools.sample_tools")
    bob = await sync_to_async(get_user_model().objects.create_user)("bob", password="pw")
    client = Client(user=bob)
    await client.connect()
    await client.send_json({"type": "user_message", "text": "whoami"})
    # Sync ORM code, run off the event loop, with the session's user.
    await until_answer_with(client, "user bob has 1 session(s)")
    await client.close()


async def test_system_messages_are_an_opt_in_extension(simulator):
    client = Client()
    await client.connect()
    await client.send_json({"type": "system_message", "text": "Speak like a pirate."})
    assert (await client.until(type="error"))["code"] == "unknown_type"
    await client.close()

    configure(client_messages="system_message")
    client = Client()
    await client.connect()
    await client.send_json({"type": "system_message", "text": "Speak like a pirate."})
    await client.send_json({"type": "system_message", "text": ""})
    assert (await client.until(type="error"))["code"] == "invalid_field"
    await client.close()
    items = [
        e["item"]
        for e in simulator.connections[-1].received
        if e["type"] == "conversation.item.create"
    ]
    assert items == [
        {
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": "Speak like a pirate."}],
        }
    ]


def pirate_policy(user: Any, scope: Any) -> SessionPolicy:
    """A policy for the tests: anonymous users get one tool and a pirate."""
    if user is None:
        return SessionPolicy(instructions="Talk like a pirate.", voice="ash", tools=["list_notes"])
    return SessionPolicy()


async def test_the_session_policy_chooses_instructions_voice_and_tools_per_user(simulator):
    configure(tools="examples", session_policy="tests.tools.test_session_tools.pirate_policy")
    client = Client()
    await client.connect()
    session = simulator.connections[-1].received[0]["session"]
    assert session["instructions"] == "Talk like a pirate."
    assert session["audio"]["output"]["voice"] == "ash"
    assert [t["name"] for t in session["tools"]] == ["list_notes"]
    await client.close()

    ann = await sync_to_async(get_user_model().objects.create_user)("ann2", password="pw")
    client = Client(user=ann)
    await client.connect()
    session = simulator.connections[-1].received[0]["session"]
    assert session["instructions"] != "Talk like a pirate." and len(session["tools"]) == 3
    await client.close()


messages = st.fixed_dictionaries(
    {"type": st.just("system_message")},
    optional={
        "text": st.one_of(st.text(max_size=60), st.integers(), st.none(), st.lists(st.text())),
        "extra": st.text(max_size=10),
    },
)


@pytest.fixture
def loop_thread() -> Any:
    """A simulator on a loop of its own thread: hypothesis drives sync test bodies."""
    runner = LoopThread("custom-message-fuzz")
    sim = Simulator(pace="fast")
    runner.run(sim.start(host="127.0.0.1", port=0))
    use_config(load_config({"REALTIME_SIMULATOR_URL": sim.base_url}))
    try:
        yield runner
    finally:
        runner.run(sim.stop(), timeout=10)
        runner.stop()


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(messages, min_size=5, max_size=5))
def test_fuzzed_custom_messages_only_ever_get_clean_answers(batch, loop_thread):
    configure(client_messages="system_message")

    async def run() -> None:
        client = Client()
        await client.connect()
        for message in batch:
            await client.send_json(message)
        await client.send_json({"type": "user_message", "text": "ping"})
        await client.until(action="response_done")
        for error in client.of("error"):
            assert error["fatal"] is False
            assert error["code"] in ("missing_field", "invalid_field")
        await client.close()

    loop_thread.run(run())


def test_a_bad_tools_setting_stops_start_up_naming_the_variable():
    import subprocess
    import sys

    env = {"RELAY_TOOLS": "myapp.tols", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "RELAY_TOOLS: cannot import 'myapp.tols'" in done.stderr
