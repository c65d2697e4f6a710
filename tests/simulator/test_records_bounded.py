"""Issue 25, finding 10: a long-running simulator keeps per-connection records for the newest
connections only (it grew 106 → 226 MiB over 3 000 relay sessions: every record kept every
event it sent), and nothing else of a closed connection."""

from __future__ import annotations

import asyncio

from realtime_simulator import Simulator
from realtime_simulator.server import DEFAULT_KEEP_RECORDS

from .conftest import open_client


async def one_turn(sim: Simulator, tag: int) -> None:
    client = await open_client(sim, query=f"tag={tag}")
    text = {"type": "input_text", "text": f"hello {tag}"}
    item = {"type": "message", "role": "user", "content": [text]}
    await client.send({"type": "conversation.item.create", "item": item})
    await client.send({"type": "response.create"})
    await client.until("response.done")
    await client.ws.close()


async def test_only_the_newest_records_are_kept_and_closed_sessions_are_released() -> None:
    async with Simulator(api_key="test-key", pace="fast", keep_records=5) as sim:
        for tag in range(12):
            await one_turn(sim, tag)
        await asyncio.wait_for(sim.connections[-1].closed.wait(), 5)
        assert [record.query["tag"] for record in sim.connections] == [
            str(tag) for tag in range(7, 12)
        ]
        assert all(record.sent for record in sim.connections)  # the kept ones are whole
        assert not sim._sessions and not sim._pending  # nothing of a closed connection


async def test_by_default_the_newest_200_records_are_kept(sim: Simulator) -> None:
    assert DEFAULT_KEEP_RECORDS == 200
    total = DEFAULT_KEEP_RECORDS + 15
    for tag in range(total):
        client = await open_client(sim, query=f"tag={tag}")
        await client.ws.close()
    assert len(sim.connections) == DEFAULT_KEEP_RECORDS
    assert sim.connections[0].query["tag"] == "15"
    assert sim.connections[-1].query["tag"] == str(total - 1)
