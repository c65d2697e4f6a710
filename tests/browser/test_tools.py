"""Tool calls and relay notes on the demo page: end to end with the shipped example tools
(`RELAY_TOOLS=examples`), and every status against a mocked relay (Playwright's WebSocket
routing) for what the simulator does not produce on demand."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURES, suffix
from .test_demo_page import CONNECTED, _open_mocked, stats, wait_connected
from .test_turns import open_wired

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]


@pytest.fixture
def tools_relay_url(relays: Any, upstream_api: str) -> str:
    """The relay offering the shipped example tools (get_current_time, add_note, list_notes)."""
    return relays(upstream_api, "daphne-tools.log", RELAY_TOOLS="examples")


@pytest.mark.both_apis
def test_asking_for_the_time_runs_the_tool(
    launch: Any, tools_relay_url: str, artifacts: Path, upstream_api: str
) -> None:
    """On GPT-Live the voice delegates to the Responses backend, whose call the relay runs.
    "what time is it" is get_current_time's example phrase: the simulators call the tool."""
    page, wire = open_wired(launch(FIXTURES / "silence_2s_24k.wav"), tools_relay_url)
    wait_connected(page)
    # The tools panel's hint, as a new user follows it: the phrase goes in the box, sent as is.
    page.locator("#tools button.try", has_text="what time is it").click()
    box = page.get_by_label("Message to the assistant")
    assert box.input_value() == "what time is it"
    box.press("Enter")

    line = page.locator('.tool-call[data-status="done"]', has_text="get_current_time")
    line.wait_for()
    notices = [m for m in wire.received if m["type"] == "tool_call"]
    assert [m["status"] for m in notices] == ["started", "done"]
    result = notices[-1]["result"]
    assert result["timezone"] == "UTC"
    assert result["iso"] in line.inner_text()  # the tool shows its result (show_result=True)
    # The spoken answer carries the time the tool returned: the real time, now.
    answer = page.locator(
        ".bubble.assistant:not(.pending)", has_text="The get_current_time function returned"
    )
    answer.wait_for()
    if upstream_api == "realtime":  # the Realtime simulator's wording
        assert "That is the answer." in answer.inner_text()
    assert result["iso"] in answer.inner_text()
    told = datetime.fromisoformat(result["iso"])
    assert abs((datetime.now(UTC) - told).total_seconds()) < 60
    assert re.search(r"\d\d:\d\d:\d\d", answer.inner_text())
    # The line sits between the question and the answer.
    order = page.locator("#conversation > li").evaluate_all(
        "items => items.map(li => li.classList.contains('tool-call') ? 'tool' : li.className"
        " + (li.textContent.includes('function returned') ? ' answer' : ''))"
    )
    if upstream_api == "realtime":
        assert order[-3:] == ["bubble user", "tool", "bubble assistant answer"]
    else:
        # GPT-Live says "One moment…" (its acknowledgement) as soon as it delegates, before the
        # tool runs; the result follows without a 0.8 s pause, so both are one answer (one
        # bubble) that began before the tool line.
        user = order.index("bubble user")
        assert user < order.index("tool") and "bubble assistant answer" in order[user:], order
        assert "One moment, let me check that." in answer.inner_text()
    page.wait_for_function("() => window.relayDemo.stats.lastUsage !== null")
    assert "error" not in [m["type"] for m in wire.received]
    assert page.locator("#notice").is_hidden()
    page.screenshot(path=str(artifacts / f"demo-tool-call{suffix(upstream_api)}.png"))


def _tool(call_id: str, name: str, status: str, **fields: Any) -> str:
    message = {"type": "tool_call", "name": name, "call_id": call_id, "status": status}
    return json.dumps({**message, **fields}, separators=(",", ":"))


def test_tool_calls_render_as_status_lines(
    launch: Any, tools_relay_url: str, artifacts: Path
) -> None:
    arguments = {"timezone": "Asia/Tokyo"}
    result = {"timezone": "Asia/Tokyo", "iso": "2025-01-06T09:30:00+09:00", "weekday": "Monday"}
    sockets: list[Any] = []

    def relay(ws: Any, n: int) -> None:
        sockets.append(ws)
        ws.send(CONNECTED)
        ws.send(_tool("call_1", "get_current_time", "started", arguments=arguments))
        ws.send(_tool("call_2", "add_note", "started"))

    page, _ = _open_mocked(launch, tools_relay_url, relay)
    time_line = page.locator('.tool-call[data-call-id="call_1"]')
    time_line.wait_for()
    note_line = page.locator('.tool-call[data-call-id="call_2"]')
    assert time_line.get_attribute("data-status") == "started"
    assert "get_current_time" in time_line.inner_text()
    assert "running…" in time_line.inner_text()
    assert '{"timezone":"Asia/Tokyo"}' in time_line.inner_text()
    assert note_line.inner_text().endswith("running…")  # nothing shown for private tools

    ws = sockets[0]
    ws.send(_tool("call_1", "get_current_time", "done", arguments=arguments, result=result))
    ws.send(_tool("call_2", "add_note", "error", error="refused"))
    page.locator('.tool-call[data-call-id="call_1"][data-status="done"]').wait_for()
    page.locator('.tool-call[data-call-id="call_2"][data-status="error"]').wait_for()
    assert "done" in time_line.inner_text()
    assert '"weekday":"Monday"' in time_line.inner_text()
    assert "failed: refused" in note_line.inner_text()
    # One line per call, updated in place; the relay's words stay text (no markup injected).
    assert page.locator(".tool-call").count() == 2
    ws.send(_tool("call_3", "<b>x</b>", "error", error="timeout"))
    page.locator('.tool-call[data-call-id="call_3"]', has_text="failed: timed out").wait_for()
    assert page.locator(".tool-call b").count() == 0
    assert [c["status"] for c in stats(page)["toolCalls"]] == [
        "started",
        "started",
        "done",
        "error",
        "error",
    ]
    page.screenshot(path=str(artifacts / "demo-tool-lines.png"))


def test_input_timeout_shows_a_still_there_note(launch: Any, tools_relay_url: str) -> None:
    def relay(ws: Any, n: int) -> None:
        ws.send(CONNECTED)
        ws.send('{"type":"control","action":"input_timeout"}')

    page, _ = _open_mocked(launch, tools_relay_url, relay)
    note = page.locator(".bubble.system.nudge")
    note.wait_for()
    assert "still there?" in note.inner_text()
