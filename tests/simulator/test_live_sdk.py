"""The installed SDK's `client.live.connect()` as the client, on both GPT-Live routes.

How the SDK builds the URL (`AsyncLiveConnectionManager._prepare_url`): `websocket_base_url`
if set, else `base_url` with http->ws / https->wss; trailing "/" stripped, "/live/sessions"
appended, any query in the base kept; then the client's default query (AsyncAzureOpenAI:
`api-version`) merged in.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openai import AsyncAzureOpenAI, AsyncOpenAI
from openai.types.live import SessionStartedEvent
from websockets.exceptions import InvalidStatus

from realtime_simulator import Simulator

from .conftest import assert_all_received_valid, assert_all_sent_valid
from .live_client import MODEL, WEATHER_TOOL, responses_delegation, utterance
from .oracle import validate_server_event


async def receive_until(conn: Any, type_: str, sink: list[dict[str, Any]]) -> dict[str, Any]:
    while True:
        raw = await conn.recv_bytes()
        event = json.loads(raw)
        validate_server_event(event, "live")
        assert conn.parse_event(raw).type == event["type"]  # the SDK's own parsing agrees
        sink.append(event)
        if event["type"] == type_:
            return event


def said(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "session.output_transcript.delta")


async def voice_and_text_turn(client: AsyncOpenAI) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with client.live.connect() as conn:
        await conn.session.start(session={"model": MODEL}, event_id="start")
        started = conn.parse_event(json.dumps(await receive_until(conn, "session.started", events)))
        assert isinstance(started, SessionStartedEvent) and started.client_event_id == "start"
        pcm = utterance(1200)
        for i in range(0, len(pcm), 4800):
            await conn.session.input_audio.append(
                audio=base64.b64encode(pcm[i : i + 4800]).decode()
            )
        await receive_until(conn, "session.usage.updated", events)  # the spoken answer is over
        await conn.session.commentary.append(content="hello", delegation_id=None)
        await receive_until(conn, "session.usage.updated", events)
        await conn.session.close(event_id="bye")
        closed = await receive_until(conn, "session.closed", events)
        assert (closed["reason"], closed["client_event_id"]) == ("close_requested", "bye")
    return events


def expected_speech() -> str:
    return (
        "I heard 1.16 seconds of speech. This is the simulator speaking."
        " You said: hello. This is the simulator speaking."  # one transcript, a space between
    )


@pytest.mark.parametrize("how", ["websocket_base_url", "base_url"])
async def test_openai_route(sim: Simulator, how: str) -> None:
    if how == "websocket_base_url":
        client = AsyncOpenAI(api_key="test-key", websocket_base_url=f"{sim.base_url}/v1")
    else:  # the SDK turns http:// into ws://
        client = AsyncOpenAI(api_key="test-key", base_url=f"http://127.0.0.1:{sim.port}/v1")
    events = await voice_and_text_turn(client)
    assert said(events) == expected_speech()
    record = sim.connections[-1]
    assert (record.route, record.path, record.query) == ("openai_live", "/v1/live/sessions", {})
    assert record.headers["authorization"] == "Bearer test-key" and "api-key" not in record.headers
    assert "openai-beta" not in record.headers
    await record.closed.wait()
    assert (record.close_code, record.closed_by) == (1000, "server")
    assert_all_sent_valid(sim)
    assert_all_received_valid(sim)


async def test_azure_foundry_route_with_the_openai_client(sim: Simulator) -> None:
    client = AsyncOpenAI(api_key="test-key", base_url=f"http://127.0.0.1:{sim.port}/openai/v1/")
    events = await voice_and_text_turn(client)
    assert said(events) == expected_speech()
    record = sim.connections[-1]
    assert (record.route, record.path) == ("azure_live", "/openai/v1/live/sessions")
    assert record.headers["authorization"] == "Bearer test-key"
    assert_all_sent_valid(sim)
    assert_all_received_valid(sim)


async def test_azure_foundry_route_with_the_azure_client(sim: Simulator) -> None:
    client = AsyncAzureOpenAI(
        base_url=f"http://127.0.0.1:{sim.port}/openai/v1", api_key="test-key",
        api_version="preview",
    )  # fmt: skip
    events = await voice_and_text_turn(client)
    assert said(events) == expected_speech()
    record = sim.connections[-1]
    assert (record.route, record.query) == ("azure_live", {"api-version": "preview"})
    assert record.headers["api-key"] == "test-key" and "authorization" not in record.headers
    assert_all_sent_valid(sim)
    assert_all_received_valid(sim)


async def test_wrong_keys_are_refused_on_both_routes(sim: Simulator) -> None:
    clients = [
        AsyncOpenAI(api_key="nope", websocket_base_url=f"{sim.base_url}/v1"),
        AsyncOpenAI(api_key="nope", base_url=f"http://127.0.0.1:{sim.port}/openai/v1"),
        AsyncAzureOpenAI(
            base_url=f"http://127.0.0.1:{sim.port}/openai/v1", api_key="nope", api_version="v"
        ),
    ]
    for client in clients:
        with pytest.raises(InvalidStatus) as info:
            async with client.live.connect():
                pass
        assert info.value.response.status_code == 401
    assert [(r.route, r.status) for r in sim.connections] == [
        ("openai_live", 401), ("azure_live", 401), ("azure_live", 401),
    ]  # fmt: skip


async def test_azure_endpoint_configurations_miss_the_live_route(sim: Simulator) -> None:
    """`azure_endpoint` builds `/openai` (or `/openai/deployments/<d>`) as the base, so
    `client.live` lands on `/openai/live/sessions`: not a GPT-Live route (404)."""
    for deployment in (None, "dep"):
        client = AsyncAzureOpenAI(
            azure_endpoint=f"http://127.0.0.1:{sim.port}", azure_deployment=deployment,
            api_key="test-key", api_version="preview",
        )  # fmt: skip
        with pytest.raises(InvalidStatus) as info:
            async with client.live.connect():
                pass
        assert info.value.response.status_code == 404
    assert [r.path for r in sim.connections] == [
        "/openai/live/sessions", "/openai/deployments/dep/live/sessions",
    ]  # fmt: skip


async def test_query_in_the_base_url_reaches_the_simulator(sim: Simulator) -> None:
    base = f"{sim.base_url}/v1?sim_transcript=get_weather%20in%20Rome"
    client = AsyncOpenAI(api_key="test-key", websocket_base_url=base)
    events: list[dict[str, Any]] = []
    async with client.live.connect() as conn:
        delegation = responses_delegation(WEATHER_TOOL)
        await conn.session.start(session={"model": MODEL, "delegation": delegation})
        await receive_until(conn, "session.started", events)
        pcm = utterance(900)
        await conn.session.input_audio.append(audio=base64.b64encode(pcm).decode())
        created = await receive_until(conn, "session.delegation.created", events)
        call = None
        while call is None:
            event = await receive_until(conn, "response.event", events)
            item = event["event"].get("item") or {}
            if event["event"]["type"] == "response.output_item.done":
                call = item
        while event["event"]["type"] != "response.completed":
            event = await receive_until(conn, "response.event", events)
        output = {"type": "function_call_output", "call_id": call["call_id"], "output": "warm"}
        await conn.response.item.create(item=output)  # type: ignore[arg-type]
        await conn.response.create()
        text = "The get_weather function returned warm."
        while not said(events).endswith(text):
            await receive_until(conn, "session.output_transcript.delta", events)
    assert created["delegation"]["target"] == "responses"
    assert sim.connections[-1].query == {"sim_transcript": "get_weather in Rome"}
    assert_all_sent_valid(sim)
    assert_all_received_valid(sim)
