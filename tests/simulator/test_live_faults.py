"""GPT-Live fault switches: the Realtime `Faults`, set programmatically, by query or header."""

from __future__ import annotations

import base64
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime_simulator import Faults, Simulator

from .conftest import assert_all_sent_valid
from .live_client import open_live, utterance


@pytest.mark.parametrize("how", ["programmatic", "query", "header"])
async def test_refuse(sim: Simulator, how: str) -> None:
    if how == "programmatic":
        sim.next_faults(Faults(refuse_status=503))
    with pytest.raises(InvalidStatus) as info:
        await open_live(
            sim,
            "azure_live",
            query="sim_refuse=503" if how == "query" else "",
            headers={"X-Sim-Fault-Refuse": "503"} if how == "header" else None,
        )
    assert info.value.response.status_code == 503
    assert json.loads(info.value.response.body)["error"]["type"] == "server_error"
    c = await open_live(sim, "azure_live")  # one connection only
    await c.start()
    assert [r.status for r in sim.connections] == [503, 101]


async def test_close_mid_response(sim: Simulator) -> None:
    c = await open_live(sim, query="sim_close_mid_response=1")
    await c.start()
    await c.speak(utterance(1200))
    with pytest.raises(ConnectionClosed):
        await c.until("session.usage.updated")
    assert c.ws.close_code == 1011
    record = sim.connections[-1]
    await record.closed.wait()
    assert (record.close_code, record.closed_by) == (1011, "server")
    assert record.sent[-1]["type"] == "session.output_audio.delta"
    assert sum(e["type"] == "session.output_audio.delta" for e in record.sent) == 1
    assert_all_sent_valid(sim)


async def test_stall_after_keeps_reading(sim: Simulator) -> None:
    sim.next_faults(Faults(stall_after="session.started"))
    c = await open_live(sim)
    await c.start()
    await c.send({"type": "session.input_audio.mute"})
    with pytest.raises(TimeoutError):
        await c.recv(0.3)
    record = sim.connections[-1]
    assert (await record.wait_for("session.input_audio.mute"))["type"]
    assert record.sent_types() == ["session.started"] and not record.closed.is_set()


async def test_first_event_delay(sim: Simulator) -> None:
    c = await open_live(sim, headers={"X-Sim-Fault-First-Event-Delay-Ms": "300"})
    t0 = time.monotonic()
    await c.start()
    assert time.monotonic() - t0 >= 0.3


async def test_inject_error(sim: Simulator) -> None:
    sim.next_faults(Faults(inject_error_after="session.started", inject_error_code="server_error"))
    c = await open_live(sim)
    await c.start()
    error = await c.recv()
    assert error["type"] == "error" and error["error"]["code"] == "server_error"
    c2 = await open_live(
        sim, query="sim_inject_error_after=session.input_audio.muted&sim_inject_error_code=xyz"
    )
    await c2.start()
    await c2.send({"type": "session.input_audio.mute"})
    got = [await c2.recv(), await c2.recv()]
    assert [e["type"] for e in got] == ["session.input_audio.muted", "error"]
    assert got[1]["error"]["code"] == "xyz"
    assert_all_sent_valid(sim)


@pytest.mark.parametrize("how", ["fault", "query", "header", "cap"])
async def test_expiry_closes_the_session(how: str) -> None:
    async with Simulator(pace="fast", session_max_seconds=0.3 if how == "cap" else 3600) as sim:
        if how == "fault":
            sim.next_faults(Faults(expire_after_s=0.3))
        c = await open_live(
            sim,
            query="sim_expire_after_s=0.3" if how == "query" else "",
            headers={"X-Sim-Fault-Expire-After-S": "0.3"} if how == "header" else None,
        )
        session = await c.start()
        closed = await c.recv(3)
        assert closed["type"] == "session.closed" and closed["reason"] == "expired"
        assert closed["session"]["id"] == session["id"] and "client_event_id" not in closed
        if how == "cap":
            assert session["expires_at"] <= time.time() + 1
        with pytest.raises(ConnectionClosed):
            await c.recv(2)
        record = sim.connections[-1]
        await record.closed.wait()
        assert (record.close_code, record.closed_by) == (1000, "server")
        assert_all_sent_valid(sim)


async def test_echo_mode() -> None:
    async with Simulator(pace="fast", echo=True) as sim:
        c = await open_live(sim)
        payloads = [bytes([i]) * 960 for i in range(4)]
        for payload in payloads:  # no session.start needed in echo mode
            await c.send_raw(
                json.dumps(
                    {
                        "type": "session.input_audio.append",
                        "audio": base64.b64encode(payload).decode(),
                    }
                )
            )
        got = [await c.recv() for _ in payloads]
        assert [base64.b64decode(e["delta"]) for e in got] == payloads
        assert {e["type"] for e in got} == {"session.output_audio.delta"}
        record = sim.connections[-1]
        assert record.appends == 4 and record.received == [] and record.sent == []
