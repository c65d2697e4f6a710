"""Project-wide test settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from realtime.config import RelayConfig, load_config
from realtime.runtime import Runtime, installed
from realtime.simulator import Simulator


@pytest.fixture(autouse=True)
def relay_runtime() -> Iterator[Runtime]:
    """Each test gets a runtime of its own (the simulator's configuration until a test sets
    another), without the per-worker reaper: a process-lifetime task that tests start
    themselves when they need it."""
    runtime = Runtime(load_config({}).replace(reaper_enabled=False))
    with installed(runtime):
        yield runtime


@pytest.fixture
async def simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(pace="fast")
    await sim.start(host="127.0.0.1", port=0)
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def relay_config(simulator: Simulator) -> RelayConfig:
    """The relay pointed at the in-process simulator (fast pace)."""
    from tests.relay.conftest import use_config

    return use_config(load_config({"REALTIME_SIMULATOR_URL": simulator.base_url}))
