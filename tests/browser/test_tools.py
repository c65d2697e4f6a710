"""Tool calls and relay notes on the demo page.

The rendering is checked against a mocked relay (Playwright's WebSocket routing), so it does
not depend on the session core sending `tool_call` yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .test_demo_page import CONNECTED, _open_mocked, stats

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]


def _tool(call_id: str, name: str, status: str, **fields: Any) -> str:
    message = {"type": "tool_call", "name": name, "call_id": call_id, "status": status}
    return json.dumps({**message, **fields}, separators=(",", ":"))


def test_tool_calls_render_as_status_lines(launch: Any, relay_url: str, artifacts: Path) -> None:
    arguments = {"timezone": "Asia/Tokyo"}
    result = {"timezone": "Asia/Tokyo", "iso": "2025-01-06T09:30:00+09:00", "weekday": "Monday"}
    sockets: list[Any] = []

    def relay(ws: Any, n: int) -> None:
        sockets.append(ws)
        ws.send(CONNECTED)
        ws.send(_tool("call_1", "get_current_time", "started", arguments=arguments))
        ws.send(_tool("call_2", "add_note", "started"))

    page, _ = _open_mocked(launch, relay_url, relay)
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


def test_input_timeout_shows_a_still_there_note(launch: Any, relay_url: str) -> None:
    def relay(ws: Any, n: int) -> None:
        ws.send(CONNECTED)
        ws.send('{"type":"control","action":"input_timeout"}')

    page, _ = _open_mocked(launch, relay_url, relay)
    note = page.locator(".bubble.system.nudge")
    note.wait_for()
    assert "still there?" in note.inner_text()
