from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime_simulator import Faults, Simulator

from .conftest import assert_all_sent_valid, open_client, types
from .test_turns import text_item


@pytest.mark.parametrize("status", [401, 500])
async def test_refuse_programmatic_and_query(sim: Simulator, status: int) -> None:
    sim.next_faults(Faults(refuse_status=status))
    with pytest.raises(InvalidStatus) as info:
        await open_client(sim)
    assert info.value.response.status_code == status
    assert json.loads(info.value.response.body)["error"]["code"]
    # the fault was for one connection only
    client = await open_client(sim)
    await client.ws.close()
    with pytest.raises(InvalidStatus) as info:
        await open_client(sim, query=f"sim_refuse={status}")
    assert info.value.response.status_code == status
    assert [r.status for r in sim.connections] == [status, 101, status]


async def test_close_mid_response(sim: Simulator) -> None:
    c = await open_client(sim, query="sim_close_mid_response=1")
    await c.send(text_item("hi"))
    await c.send({"type": "response.create"})
    with pytest.raises(ConnectionClosed):
        await c.until("response.done")
    assert c.ws.close_code == 1011
    record = sim.connections[-1]
    await record.closed.wait()
    assert record.close_code == 1011 and record.closed_by == "server"
    assert types(record.sent)[-1] == "response.output_audio.delta"


async def test_stall_after_keeps_reading(sim: Simulator) -> None:
    sim.next_faults(Faults(stall_after="session.updated"))
    c = await open_client(sim)
    await c.send({"type": "session.update", "session": {"type": "realtime"}})
    assert (await c.recv())["type"] == "session.updated"
    await c.send(text_item("hi"))
    with pytest.raises(TimeoutError):
        await c.recv(0.3)
    record = sim.connections[-1]
    assert (await record.wait_for("conversation.item.create"))["item"]["role"] == "user"
    assert not record.closed.is_set()


async def test_stall_via_query_as_the_sdk_builds_it(sim: Simulator) -> None:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        api_key="test-key", websocket_base_url=f"{sim.base_url}/v1?sim_stall_after=session.created"
    )
    async with client.realtime.connect(model="gpt-realtime") as conn:
        first = json.loads(await conn.recv_bytes())
        assert first["type"] == "session.created"
        await conn.send({"type": "session.update", "session": {"type": "realtime"}})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(conn.recv_bytes(), 0.3)
    record = sim.connections[-1]
    assert record.path == "/v1/realtime"
    assert record.query == {"sim_stall_after": "session.created", "model": "gpt-realtime"}


async def test_first_event_delay(sim: Simulator) -> None:
    t0 = time.monotonic()
    c = await open_client(sim, query="sim_first_event_delay_ms=300")
    assert time.monotonic() - t0 >= 0.3
    await c.ws.close()


async def test_inject_error(sim: Simulator) -> None:
    sim.next_faults(Faults(inject_error_after="session.updated", inject_error_code="server_error"))
    c = await open_client(sim)
    await c.send({"type": "session.update", "session": {"type": "realtime"}})
    got = [await c.recv(), await c.recv()]
    assert types(got) == ["session.updated", "error"] and got[1]["error"]["code"] == "server_error"
    c2 = await open_client(
        sim, query="sim_inject_error_after=session.created&sim_inject_error_code=xyz"
    )
    assert (await c2.recv())["error"]["code"] == "xyz"


@pytest.mark.parametrize("how", ["fault", "query", "cap"])
async def test_session_expiry(how: str) -> None:
    async with Simulator(pace="fast", session_max_seconds=0.3 if how == "cap" else 3600) as sim:
        if how == "fault":
            sim.next_faults(Faults(expire_after_s=0.3))
        c = await open_client(sim, query="sim_expire_after_s=0.3" if how == "query" else "")
        err = await c.recv(2)
        assert err["type"] == "error" and err["error"]["code"] == "session_expired"
        with pytest.raises(ConnectionClosed):
            await c.recv(2)
        assert c.ws.close_code == 1000
        record = sim.connections[-1]
        await record.closed.wait()
        assert record.closed_by == "server" and record.close_code == 1000
        assert_all_sent_valid(sim)


async def test_fault_headers() -> None:
    async with Simulator(pace="fast") as sim:
        with pytest.raises(InvalidStatus):
            await open_client(sim, headers={"X-Sim-Fault-Refuse": "500"})


@pytest.mark.parametrize("dialect", ["ga", "beta"])
async def test_echo_mode(dialect: str) -> None:
    async with Simulator(pace="fast", echo=True) as sim:
        c = await open_client(sim, dialect)
        payloads = [bytes([i]) * 960 for i in range(5)]
        for p in payloads:
            await c.append(p)
        got = [await c.recv() for _ in payloads]
        assert [base64.b64decode(e["delta"]) for e in got] == payloads
        assert {e["response_id"] for e in got} == {"resp_echo"}
        await c.send(
            {
                "type": "session.update",
                "session": {"instructions": "x"}
                | ({"type": "realtime"} if dialect == "ga" else {}),
            }
        )
        assert (await c.recv())["type"] == "session.updated"
        record = sim.connections[-1]
        assert record.appends == 5
        assert all(e["type"] != "input_audio_buffer.append" for e in record.received)
        assert all("delta" not in e["type"] for e in record.sent)


async def test_refused_connection_record() -> None:
    async with Simulator(api_key="k") as sim:
        with pytest.raises(InvalidStatus):
            await connect(f"{sim.base_url}/v1/realtime?model=m")
        record = sim.connections[0]
        assert record.status == 401 and record.closed.is_set() and record.query == {"model": "m"}
