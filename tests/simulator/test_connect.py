from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from realtime_simulator import Simulator

from .conftest import assert_all_sent_valid, open_client, route_url


@pytest.mark.parametrize(
    ("dialect", "route"),
    [("ga", "openai"), ("beta", "openai"), ("ga", "azure_ga"), ("beta", "azure_preview")],
)
async def test_connect_each_route(sim: Simulator, dialect: str, route: str) -> None:
    client = await open_client(sim, dialect, route)
    created = client.events[0]["session"]
    record = sim.connections[-1]
    assert record.status == 101 and record.route == route and record.dialect == dialect
    if dialect == "ga":
        assert created["type"] == "realtime"
        assert created["model"] == ("my-deployment" if route == "azure_ga" else "gpt-realtime")
        assert created["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    else:
        assert created["modalities"] == ["text", "audio"] and created["voice"] == "alloy"
        assert created["input_audio_transcription"] is None
    await client.ws.close()
    await record.closed.wait()
    assert record.closed_by == "client" and record.close_code == 1000
    assert_all_sent_valid(sim)


async def test_api_key_header_accepted(sim: Simulator) -> None:
    client = await open_client(
        sim, "beta", "azure_preview", headers={"Authorization": "", "api-key": "test-key"}
    )
    assert sim.connections[-1].headers["api-key"] == "test-key"
    await client.ws.close()


async def test_wrong_key_is_401_with_json_body(sim: Simulator) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_client(sim, headers={"Authorization": "Bearer nope"})
    assert info.value.response.status_code == 401
    assert b'"invalid_api_key"' in info.value.response.body
    assert sim.connections[-1].status == 401


async def test_missing_key_is_401(sim: Simulator) -> None:
    with pytest.raises(InvalidStatus) as info:
        await open_client(sim, headers={"Authorization": ""})
    assert info.value.response.status_code == 401


async def test_no_key_configured_accepts_anything() -> None:
    async with Simulator(pace="fast") as sim:
        client = await open_client(sim, headers={"Authorization": ""})
        await client.ws.close()


async def test_unknown_path_is_404(sim: Simulator) -> None:
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus) as info:
        await connect(f"{sim.base_url}/v2/nothing")
    assert info.value.response.status_code == 404
    assert sim.connections[-1].status == 404 and sim.connections[-1].route is None


async def test_stop_closes_connections_with_1001() -> None:
    sim = Simulator(pace="fast")
    await sim.start()
    assert sim.base_url == f"ws://127.0.0.1:{sim.port}" and sim.port > 0
    client = await open_client(sim)
    await sim.stop()
    record = sim.connections[-1]
    assert record.closed.is_set() and record.close_code == 1001 and record.closed_by == "server"
    assert client.ws.close_code == 1001


def test_route_urls_are_what_the_sdk_builds() -> None:
    sim = Simulator()
    assert route_url(sim, "ga").startswith("ws://127.0.0.1:0/v1/realtime?")
