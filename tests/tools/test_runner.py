"""ToolRunner: round trips, validation, failures, refusals, notices, counters (concurrency,
timeouts and cancellation: test_runner_concurrency.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from datetime import UTC, datetime
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, BaseModel
from pydantic_core import PydanticCustomError

from realtime.tools import Keypad, PhoneCall, ToolContext, ToolRefused, ToolRegistry, ToolRunner
from tests.tools.conftest import Notices, shown

# A sync tool runs through channels' database_sync_to_async, which checks the Django database
# connection of its thread before and after the call: a pool thread that served a test with
# database access earlier holds a connection.
pytestmark = pytest.mark.django_db

SESSION = "00000000-0000-4000-8000-000000000001"


class Echoed(BaseModel):
    text: str
    times: int


@dataclasses.dataclass
class Stamp:
    at: datetime


def build_registry() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool(description="Echo the text.", show_arguments=True, show_result=True)
    async def echo(ctx: ToolContext, text: str, times: int = 1) -> Echoed:
        return Echoed(text=text * times, times=times)

    @registry.tool(description="Who and where am I.")
    def whoami(ctx: ToolContext) -> dict[str, Any]:
        return {
            "session": ctx.session_id,
            "call": ctx.call_id,
            "signed_in": ctx.is_authenticated,
            "thread": threading.current_thread().name,
        }

    @registry.tool(description="Plain text.")
    def plain() -> str:
        return "just text"

    @registry.tool(description="A dataclass with a date.")
    async def stamp() -> Stamp:
        return Stamp(at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))

    @registry.tool(description="Fails.")
    def explode(ctx: ToolContext) -> None:
        raise RuntimeError("connection string postgres://admin:hunter2@db failed")

    @registry.tool(description="Refuses.")
    async def forbidden(ctx: ToolContext) -> None:
        raise ToolRefused("Only managers may do that.")

    @registry.tool(description="Times out by itself.")
    async def own_timeout() -> None:
        raise TimeoutError("the remote service timed out")

    @registry.tool(description="No JSON form.")
    async def opaque() -> object:
        return object()

    @registry.tool(description="Too much.")
    async def huge() -> str:
        return "x" * 50_000

    return registry


def output(text: str) -> Any:
    return json.loads(text)


async def test_an_async_call_round_trip(make_runner: Any, notices: Notices) -> None:
    runner = make_runner(build_registry())
    result = await runner.run("call_1", "echo", '{"text": "ab", "times": 2}')
    assert output(result) == {"text": "abab", "times": 2}
    assert notices.statuses("call_1") == ["started", "done"]
    assert shown(notices.last("call_1")) == {
        "type": "tool_call",
        "name": "echo",
        "call_id": "call_1",
        "status": "done",
        "arguments": {"text": "ab", "times": 2},
        "result": {"text": "abab", "times": 2},
    }
    assert notices[0].arguments == {"text": "ab", "times": 2}  # shown when it starts too
    assert notices[0].duration_ms is None and notices[1].duration_ms is not None
    assert runner.stats.calls == 1 and runner.stats.errors == 0


async def test_a_sync_call_runs_in_the_tool_pool_with_its_context(make_runner: Any) -> None:
    runner = make_runner(build_registry())
    result = output(await runner.run("call_2", "whoami", ""))
    assert result["session"] == SESSION
    assert result["call"] == "call_2"
    assert result["signed_in"] is False  # no user given: anonymous
    assert result["thread"].startswith("relay-tool-test")


async def test_by_default_sync_tools_run_in_the_relays_tool_pool() -> None:
    runner = ToolRunner(build_registry(), session_id=SESSION)
    result = output(await runner.run("call_3", "whoami", "{}"))
    assert result["thread"].startswith("relay-tool_")  # ThreadPoolExecutor's naming


async def test_results_are_json_or_the_string_itself(make_runner: Any) -> None:
    runner = make_runner(build_registry())
    assert await runner.run("c1", "plain", "{}") == "just text"
    assert output(await runner.run("c2", "stamp", "{}")) == {"at": "2030-01-02T03:04:05Z"}


@pytest.mark.parametrize(
    ("arguments", "mentioned"),
    [
        ('{"times": 2}', "text: Field required"),
        ('{"text": "a", "times": "many"}', "times: Input should be a valid integer"),
        ('{"text": "a", "colour": "red"}', "colour: Extra inputs are not permitted"),
        ('{"text": ', "Invalid JSON"),
        ('["text"]', "Input should be an object"),
    ],
)
async def test_invalid_arguments_give_an_error_the_model_can_speak_about(
    make_runner: Any, notices: Notices, arguments: str, mentioned: str
) -> None:
    runner = make_runner(build_registry())
    result = output(await runner.run("bad", "echo", arguments))
    assert result["error"] == "invalid_arguments"
    assert mentioned in result["message"]
    assert notices.statuses("bad") == ["started", "error"]
    assert notices.last("bad").error == "invalid_arguments"
    assert notices.last("bad").arguments is None
    assert runner.stats.errors == 1


async def test_validation_errors_do_not_echo_the_input(make_runner: Any) -> None:
    runner = make_runner(build_registry())
    result = await runner.run("bad", "echo", '{"text": "a", "times": "SECRET-VALUE"}')
    assert "SECRET-VALUE" not in result


def known_city(value: str) -> str:
    raise PydanticCustomError("unknown_city", "{value} is not a city we know", {"value": value})


async def test_a_tool_s_own_validator_cannot_echo_the_input(make_runner: Any) -> None:
    """A deployment's tool may word its validation error with the value (pydantic custom
    errors take context); the runner still never sends the input back (issue 25)."""

    registry = ToolRegistry()

    @registry.tool(description="Weather in a city.")
    async def weather(city: Annotated[str, AfterValidator(known_city)]) -> str:
        return "sunny"

    runner = make_runner(registry)
    result = output(await runner.run("w", "weather", '{"city": "SECRET-CITY"}'))
    assert result["error"] == "invalid_arguments"
    assert "SECRET-CITY" not in result["message"] and result["message"].startswith(
        "Invalid arguments: city:"
    )


async def test_an_unknown_tool_is_an_error_result(make_runner: Any, notices: Notices) -> None:
    runner = make_runner(build_registry().only(["echo"]))
    result = output(await runner.run("c", "plain", "{}"))
    assert result == {"error": "unknown_tool", "message": "No tool is named 'plain'."}
    assert notices.last("c").error == "unknown_tool"
    await runner.run("long", "x" * 10_000, "{}")
    assert notices.last("long").name == "x" * 64


async def test_decoded_arguments_are_accepted_too(make_runner: Any) -> None:
    runner = make_runner(build_registry())
    assert output(await runner.run("d", "echo", {"text": "a", "times": 3})) == {
        "text": "aaa",
        "times": 3,
    }
    assert output(await runner.run("e", "echo", {"times": 3}))["error"] == "invalid_arguments"


async def test_an_exception_is_logged_with_the_session_not_told_to_the_model(
    make_runner: Any, notices: Notices, caplog: pytest.LogCaptureFixture
) -> None:
    runner = make_runner(build_registry())
    with caplog.at_level(logging.ERROR, logger="realtime.tools"):
        result = await runner.run("boom", "explode", "{}")
    assert output(result) == {"error": "failed", "message": "The tool failed."}
    assert "hunter2" not in result and "Traceback" not in result
    record = next(r for r in caplog.records if r.name == "realtime.tools")
    assert record.getMessage() == f"session {SESSION}: tool 'explode' (call 'boom') failed"
    assert record.session_id == SESSION  # type: ignore[attr-defined]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert notices.last("boom").error == "failed"
    assert runner.stats.errors == 1


async def test_a_refusal_is_its_own_result_and_counter(make_runner: Any, notices: Notices) -> None:
    runner = make_runner(build_registry())
    result = output(await runner.run("no", "forbidden", "{}"))
    assert result == {"error": "refused", "message": "Only managers may do that."}
    assert notices.last("no").error == "refused"
    assert (runner.stats.refusals, runner.stats.errors) == (1, 0)


async def test_a_tools_own_timeout_error_is_a_failure_not_a_timeout(make_runner: Any) -> None:
    runner = make_runner(build_registry())
    assert output(await runner.run("t", "own_timeout", "{}"))["error"] == "failed"
    assert (runner.stats.errors, runner.stats.timeouts) == (1, 0)


async def test_results_without_json_form_or_too_large_are_failures(make_runner: Any) -> None:
    runner = make_runner(build_registry())
    assert output(await runner.run("o", "opaque", "{}"))["error"] == "failed"
    assert output(await runner.run("h", "huge", "{}")) == {
        "error": "failed",
        "message": "The tool's result was too large.",
    }
    assert runner.stats.errors == 2


async def test_nothing_is_shown_for_a_tool_not_marked_safe(
    make_runner: Any, notices: Notices
) -> None:
    runner = make_runner(build_registry())
    await runner.run("w", "whoami", "{}")
    assert [shown(n) for n in notices] == [
        {"type": "tool_call", "name": "whoami", "call_id": "w", "status": "started"},
        {"type": "tool_call", "name": "whoami", "call_id": "w", "status": "done"},
    ]


async def test_a_failing_notice_sink_does_not_break_the_call(make_runner: Any) -> None:
    def sink(notice: Any) -> None:
        raise ValueError("client gone")

    runner = make_runner(build_registry(), on_notice=sink)
    assert await runner.run("p", "plain", "{}") == "just text"


async def test_counters_add_up(make_runner: Any, notices: Notices) -> None:
    registry = build_registry()

    @registry.tool(description="Slow enough to measure.")
    async def pause() -> str:
        await asyncio.sleep(0.05)
        return "ok"

    runner = make_runner(registry)
    for call_id, name in enumerate(["plain", "pause", "explode", "forbidden", "nope"]):
        await runner.run(str(call_id), name, "{}")
    stats = runner.stats
    assert (stats.calls, stats.errors, stats.refusals, stats.timeouts) == (5, 2, 1, 0)
    assert 50 <= stats.longest_ms <= stats.total_ms
    ended = [n.duration_ms or 0 for n in notices if n.status != "started"]
    assert max(ended) == stats.longest_ms and sum(ended) == stats.total_ms
    assert runner.stats.as_dict()["tool_calls"] == 5


@pytest.mark.parametrize(
    "arguments",
    ['{"text": "a\\u0000b"}', '{"text": "a\\udfffb"}', {"text": "a\x00b"}, {"text": "\udfff"}],
    ids=["nul_escape", "surrogate_escape", "nul_decoded", "surrogate_decoded"],
)
async def test_arguments_holding_a_lone_surrogate_or_nul_are_invalid_and_never_reach_the_tool(
    make_runner: Any, notices: Notices, arguments: Any
) -> None:
    """Issue 25, finding 1: what the tool would get (and echo, log, store) must be valid text."""
    runner = make_runner(build_registry())
    result = await runner.run("t", "echo", arguments)
    parsed = output(result)
    assert parsed["error"] == "invalid_arguments"
    assert "\x00" not in result and "\udfff" not in result
    result.encode("utf-8")  # the output can go to the model
    assert notices.statuses("t") == ["started", "error"]
    assert notices.last("t").error == "invalid_arguments"


async def test_an_unknown_tool_s_name_is_made_valid_text(
    make_runner: Any, notices: Notices
) -> None:
    runner = make_runner(build_registry())
    result = await runner.run("u", "nope\udfff\x00", "{}")
    assert notices.last("u").name == "nope\ufffd\ufffd"
    result.encode("utf-8")


async def test_a_calls_tools_see_its_facts_and_the_keys_pressed_when_they_started(
    make_runner: Any,
) -> None:
    registry = ToolRegistry()
    pressed_meanwhile = asyncio.Event()

    @registry.tool(description="What a tool of the call sees.")
    async def keys(ctx: ToolContext, wait: bool = False) -> dict[str, Any]:
        if wait:
            await pressed_meanwhile.wait()
        return {"keypad": ctx.keypad, "phone": dataclasses.asdict(ctx.phone) if ctx.phone else None}

    pad = Keypad()
    call = PhoneCall("twilio", "CA" + "1" * 32, "+4477*****123", "+1500****006")
    runner = make_runner(registry, phone=call, keypad=pad)
    for key in "12#":
        pad.press(key)
    assert output(await runner.run("c1", "keys", "{}")) == {
        "keypad": "12#",
        "phone": dataclasses.asdict(call),
    }
    waiting = runner.submit("c2", "keys", '{"wait": true}')
    await asyncio.sleep(0)  # the call has started
    pad.press("9")
    pressed_meanwhile.set()
    assert output(await waiting)["keypad"] == "12#"  # the keys as the call started
    for _ in range(70):
        pad.press("*")
    assert output(await runner.run("c3", "keys", "{}"))["keypad"] == "*" * 64  # the latest
    browser = make_runner(registry)
    assert output(await browser.run("c4", "keys", "{}")) == {"keypad": "", "phone": None}
