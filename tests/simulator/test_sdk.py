"""The installed openai SDK as the client, on every route."""

from __future__ import annotations

import json

from openai import AsyncAzureOpenAI, AsyncOpenAI

from realtime_simulator import Simulator

from .oracle import validate_server_event


async def _text_turn(conn: object, dialect: str) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []

    async def until(type_: str) -> None:
        while True:
            event = json.loads(await conn.recv_bytes())  # type: ignore[attr-defined]
            validate_server_event(event, dialect)
            events.append(event)
            if event["type"] == type_:
                return

    await until("session.created")
    await conn.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}],
            },
        }
    )  # type: ignore[attr-defined]
    await conn.send({"type": "response.create"})  # type: ignore[attr-defined]
    await until("response.done")
    return events


async def test_sdk_openai_ga(sim: Simulator) -> None:
    client = AsyncOpenAI(api_key="test-key", websocket_base_url=f"{sim.base_url}/v1")
    async with client.realtime.connect(model="gpt-realtime") as conn:
        events = await _text_turn(conn, "ga")
    record = sim.connections[-1]
    assert (record.route, record.dialect, record.path) == ("openai", "ga", "/v1/realtime")
    assert record.headers["authorization"] == "Bearer test-key"
    assert events[-1]["response"]["status"] == "completed"  # type: ignore[index]


async def test_sdk_openai_beta(sim: Simulator) -> None:
    client = AsyncOpenAI(api_key="test-key", websocket_base_url=f"{sim.base_url}/v1")
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        await _text_turn(conn, "beta")
    record = sim.connections[-1]
    assert (record.route, record.dialect) == ("openai", "beta")
    assert record.headers["openai-beta"] == "realtime=v1"


async def test_sdk_azure_ga(sim: Simulator) -> None:
    client = AsyncOpenAI(api_key="test-key", websocket_base_url=f"{sim.base_url}/openai/v1")
    async with client.realtime.connect(model="my-deployment") as conn:
        await _text_turn(conn, "ga")
    record = sim.connections[-1]
    assert (record.route, record.dialect, record.query["model"]) == (
        "azure_ga",
        "ga",
        "my-deployment",
    )


async def test_sdk_azure_preview(sim: Simulator) -> None:
    # Without websocket_base_url the Azure client forces wss://; point it at ws:// explicitly.
    client = AsyncAzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{sim.port}",
        api_version="2025-04-01-preview",
        azure_deployment="dep",
        api_key="test-key",
        websocket_base_url=f"{sim.base_url}/openai",
    )
    async with client.beta.realtime.connect(model="dep") as conn:
        await _text_turn(conn, "beta")
    record = sim.connections[-1]
    assert (record.route, record.dialect, record.path) == (
        "azure_preview",
        "beta",
        "/openai/realtime",
    )
    assert record.query == {"api-version": "2025-04-01-preview", "deployment": "dep"}
    assert record.headers["api-key"] == "test-key"


async def test_sdk_azure_without_ws_base_url_uses_wss(sim: Simulator) -> None:
    client = AsyncAzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{sim.port}", api_version="2025-04-01-preview",
        azure_deployment="dep", api_key="test-key",
    )  # fmt: skip
    url, _ = await client._configure_realtime("dep", {})
    assert url.scheme == "wss" and url.path == "/openai/realtime"
