"""Issue 25, finding 2: a session's background task that fails ends its session.

Before, a failing presence task ("Task exception was never retrieved … realtime-presence-…")
left the session running without its row's heartbeat (no limits, budget, terminate or
transcript), and a failing writer on GPT-Live left it running without replies. Now every task
a session starts (presence, reader, writer, clock, tool results, notices) ends the session
with ``internal_error`` (1011) if it fails, logged with the session id.
"""

from __future__ import annotations

import gc
import logging

import pytest
from asgiref.sync import sync_to_async

from realtime.guards import session_limits as limits
from realtime.models import RealtimeSession
from realtime.ops import presence as registry
from realtime.upstream.live import LiveAdapter
from realtime.upstream.realtime import RealtimeAdapter
from tests.relay.conftest import Client, configure, relay_tasks

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]

ADAPTERS = {"realtime": RealtimeAdapter, "live": LiveAdapter}


async def _broken(*args, **kwargs):
    raise RuntimeError("boom")


def _break_presence(monkeypatch, upstream_api):
    monkeypatch.setattr(registry.Presence, "run", _broken)


def _break_clock(monkeypatch, upstream_api):
    monkeypatch.setattr(limits, "session_clock", _broken)


def _break_writer(monkeypatch, upstream_api):
    # A frame the socket cannot send (as a lone surrogate once was): the writer's send raises.
    monkeypatch.setattr(ADAPTERS[upstream_api], "user_text", lambda self, text: [object()])


def _break_tool_results(monkeypatch, upstream_api):
    def tool_result(self, call_id, output):
        raise RuntimeError("boom")

    monkeypatch.setattr(ADAPTERS[upstream_api], "tool_result", tool_result)


def _row(session_id):
    return RealtimeSession.objects.get(id=session_id)


@pytest.mark.parametrize(
    "task, breaks",
    [
        ("presence", _break_presence),
        ("clock", _break_clock),
        ("writer", _break_writer),
        ("tool-results", _break_tool_results),
    ],
)
@pytest.mark.both_apis
async def test_a_failing_background_task_ends_its_session_with_1011_and_is_logged(
    monkeypatch, caplog, upstream_api, task, breaks
):
    configure(tools="examples")
    breaks(monkeypatch, upstream_api)
    caplog.set_level(logging.INFO, logger="realtime")
    client = Client()
    await client.connect(greeting=False)
    if task in ("writer", "tool-results"):
        info = await client.until(action="session_info")
        await client.send_json(
            {"type": "user_message", "text": "what time is it - use get_current_time"}
        )
    error = await client.until(type="error")
    assert error == {
        "type": "error",
        "code": "internal_error",
        "message": "the relay hit an internal error",
        "fatal": True,
    }
    assert await client.until_closed() == 1011
    assert relay_tasks() == []
    failures = [r for r in caplog.records if r.levelname == "ERROR" and task in r.getMessage()]
    assert failures, "the failure is logged"
    session_id = failures[0].session_id
    assert str(session_id) in failures[0].getMessage()
    if task in ("writer", "tool-results"):
        assert info["session_id"] == str(session_id)
    row = await sync_to_async(_row)(session_id)
    assert (row.status, row.close_reason, row.close_code) == ("closed", "internal_error", 1011)
    gc.collect()
    assert "never retrieved" not in caplog.text
