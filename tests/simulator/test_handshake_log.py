"""A client that leaves during the opening handshake is not an error in the simulator's log
(the relay cancels its upstream connect when its browser leaves early)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from realtime_simulator import Simulator


async def test_a_client_leaving_mid_handshake_logs_no_error(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="realtime_simulator")
    await leave_twice(simulator)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == []
    left = [r for r in caplog.records if "left during its opening handshake" in r.getMessage()]
    assert len(left) == 2 and all(r.levelno == logging.DEBUG for r in left)


async def leave_twice(simulator: Simulator) -> None:
    """Nothing sent, then half a request: both close before the handshake is complete."""
    for request in (b"", b"GET /v1/realtime HTTP/1.1\r\nHost: x\r\n"):
        _, writer = await asyncio.open_connection(simulator.host, simulator.port)
        writer.write(request)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    await asyncio.sleep(0.3)


async def test_other_handshake_failures_are_still_logged(
    simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    reader, writer = await asyncio.open_connection(simulator.host, simulator.port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()
    await reader.read()
    writer.close()
    await asyncio.sleep(0.1)
    assert any("opening handshake failed" in r.getMessage() for r in caplog.records)
