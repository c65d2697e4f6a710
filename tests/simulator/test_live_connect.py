"""GPT-Live: routes, keys, session.start / session.update and command validation."""

from __future__ import annotations

import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime_simulator import Simulator

from .conftest import assert_all_sent_valid
from .live_client import MODEL, WEATHER_TOOL, open_live, responses_delegation

ROUTES = [("openai_live", "/v1/live/sessions"), ("azure_live", "/openai/v1/live/sessions")]


@pytest.mark.parametrize(("route", "path"), ROUTES)
async def test_start_resolves_server_defaults(sim: Simulator, route: str, path: str) -> None:
    c = await open_live(sim, route)
    await c.send({"type": "session.start", "event_id": "start_1", "session": {"model": MODEL}})
    started = await c.recv()
    assert started["type"] == "session.started" and started["client_event_id"] == "start_1"
    session = started["session"]
    assert session["id"].startswith("sess_") and session["status"] == "active"
    assert session["model"] == MODEL
    assert session["audio"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "output": {"voice": "marin"},
    }
    assert session["delegation"] == {"type": "client", "acknowledgement_delay_ms": 0}
    assert session["store"] is False and session["input"] == [] and session["triggers"] == []
    assert 3590 < session["expires_at"] - time.time() <= 3600
    record = sim.connections[-1]
    assert (record.route, record.dialect, record.path, record.status) == (route, "live", path, 101)
    await c.ws.close()
    await record.closed.wait()
    assert record.closed_by == "client"
    assert_all_sent_valid(sim)


async def test_start_keeps_what_the_client_chose(sim: Simulator) -> None:
    c = await open_live(sim)
    session = await c.start(
        instructions="Be brief.",
        audio={"format": {"type": "audio/pcm", "rate": 16000}, "output": {"voice": {"id": "v1"}}},
        delegation=responses_delegation(WEATHER_TOOL),
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}],
        store=True,
        safety_identifier="user-42",
    )
    assert session["instructions"] == "Be brief." and session["store"] is True
    assert session["audio"]["format"]["rate"] == 16000
    assert session["audio"]["output"]["voice"] == {"id": "v1"}
    assert session["delegation"]["responses"]["tools"] == [WEATHER_TOOL]
    assert session["delegation"]["acknowledgement_delay_ms"] == 0
    assert session["input"][0]["content"][0]["text"] == "Hi"
    assert session["safety_identifier"] == "user-42"
    assert_all_sent_valid(sim)


@pytest.mark.parametrize(("route", "_path"), ROUTES)
async def test_keys_are_checked_on_both_routes(sim: Simulator, route: str, _path: str) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {"Authorization": ""}):
        with pytest.raises(InvalidStatus) as info:
            await open_live(sim, route, headers=headers)
        assert info.value.response.status_code == 401
        body = json.loads(info.value.response.body)
        assert body["error"]["code"] == "invalid_api_key"
    c = await open_live(sim, route, headers={"Authorization": "", "api-key": "test-key"})
    await c.start()
    assert [r.status for r in sim.connections] == [401, 401, 101]


async def test_unknown_live_paths_and_a_model_in_the_url_are_refused(sim: Simulator) -> None:
    for path in ("/v1/live/sessions/sess_1/attach", "/v1/live"):
        with pytest.raises(InvalidStatus) as info:
            await connect(f"{sim.base_url}{path}", additional_headers={"api-key": "test-key"})
        assert info.value.response.status_code == 404
    with pytest.raises(InvalidStatus) as info:
        await open_live(sim, query="model=gpt-live-1")
    assert info.value.response.status_code == 400
    assert json.loads(info.value.response.body)["error"]["code"] == "unknown_parameter"


async def test_first_command_must_be_session_start(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.send({"type": "session.input_audio.mute", "event_id": "m1"})
    error = await c.recv()
    assert error["type"] == "error" and error["client_event_id"] == "m1"
    assert error["error"]["code"] == "session_not_started"
    assert error["error"]["client_event_id"] == "m1"
    await c.start()
    await c.send({"type": "session.start", "event_id": "s2", "session": {"model": MODEL}})
    again = (await c.recv())["error"]
    assert (again["code"], again["client_event_id"]) == ("session_already_started", "s2")


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"model": MODEL, "voice": "marin"}, "unknown_parameter", "session.voice"),
        ({"model": MODEL, "audio": {"output": {"speed": 1.2}}}, "unknown_parameter",
         "session.audio.output.speed"),
        ({"model": MODEL, "turn_detection": None}, "unknown_parameter", "session.turn_detection"),
        ({"model": MODEL, "audio": {"format": {"type": "audio/pcm", "rate": 44100}}},
         "invalid_value", "session.audio.format.rate"),
        ({"model": MODEL, "audio": {"format": {"type": "audio/pcmu", "rate": 16000}}},
         "invalid_value", "session.audio.format.rate"),
        ({"model": MODEL, "delegation": {"type": "agents"}}, "invalid_value",
         "session.delegation.type"),
        ({"model": MODEL, "delegation": responses_delegation(tool_choice="sometimes")},
         "invalid_value", "session.delegation.responses.tool_choice"),
        ({"model": MODEL, "delegation": responses_delegation({**WEATHER_TOOL, "strict_mode": 1})},
         "unknown_parameter", "session.delegation.responses.tools[0].strict_mode"),
        ({"model": MODEL, "store": "yes"}, "invalid_type", "session.store"),
        ({"instructions": "Hi"}, "missing_required_parameter", "session.model"),
        ({"model": " "}, "invalid_value", "session.model"),
    ],
)  # fmt: skip
async def test_strict_session_config(
    sim: Simulator, session: dict[str, object], code: str, param: str
) -> None:
    c = await open_live(sim)
    await c.send_raw(json.dumps({"type": "session.start", "event_id": "e1", "session": session}))
    error = await c.recv()
    assert error["type"] == "error" and error["client_event_id"] == "e1"
    assert (error["error"]["code"], error["error"]["param"]) == (code, param)
    assert error["error"]["type"] == "invalid_request_error"
    # A failed start leaves the socket open for a corrected one.
    assert (await c.start())["model"] == MODEL
    assert_all_sent_valid(sim)


async def test_session_update_changes_delegation_and_triggers_only(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start(delegation=responses_delegation(WEATHER_TOOL, instructions="Use tools."))
    await c.send(
        {
            "type": "session.update",
            "event_id": "u1",
            "session": {
                "delegation": {
                    "type": "responses",
                    "acknowledgement_delay_ms": 250,
                    "responses": {"parallel_tool_calls": False},
                },
                "triggers": [],
            },
        }
    )
    updated = await c.recv()
    assert updated["type"] == "session.updated" and updated["client_event_id"] == "u1"
    delegation = updated["session"]["delegation"]
    assert delegation["acknowledgement_delay_ms"] == 250
    assert delegation["responses"]["parallel_tool_calls"] is False
    assert delegation["responses"]["instructions"] == "Use tools."  # omitted: kept
    assert delegation["responses"]["tools"] == [WEATHER_TOOL]
    for session, code, param in (
        ({"instructions": "x"}, "unknown_parameter", "session.instructions"),
        ({"audio": {}}, "unknown_parameter", "session.audio"),
        ({"delegation": {"type": "client"}}, "invalid_value", "session.delegation.type"),
    ):
        await c.send_raw(json.dumps({"type": "session.update", "session": session}))
        error = (await c.recv())["error"]
        assert (error["code"], error["param"]) == (code, param)
    assert_all_sent_valid(sim)


async def test_invalid_commands(sim: Simulator) -> None:
    c = await open_live(sim)
    await c.start()
    await c.send_raw('{"type":"input_audio_buffer.append","audio":""}')
    error = (await c.recv())["error"]
    assert (error["code"], error["param"]) == ("invalid_event", "type")
    await c.send_raw("not json")
    assert (await c.recv())["error"]["code"] == "invalid_json"
    await c.send_raw(b"\x00\x01")
    assert (await c.recv())["error"]["code"] == "invalid_event"
    await c.send_raw('{"type":"session.input_audio.append","audio":"***"}')
    assert (await c.recv())["error"]["param"] == "audio"
    await c.send_raw('{"type":"session.input_audio.mute","muted":true}')
    assert (await c.recv())["error"]["param"] == "muted"
    await c.send({"type": "session.output_audio.fixture.play", "audio": "", "event_id": "f1"})
    error = (await c.recv())["error"]
    assert error["code"] == "invalid_value" and "not simulated" in error["message"]
    assert error["client_event_id"] == "f1"
    assert_all_sent_valid(sim)
