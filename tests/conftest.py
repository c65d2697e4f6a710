"""Project-wide test settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from realtime.compat import redis_pools
from realtime.kernel.config import RelayConfig, load_config
from realtime.ops.runtime import Runtime, installed
from realtime_simulator import Simulator


@pytest.fixture(autouse=True)
def relay_runtime() -> Iterator[Runtime]:
    """Each test gets a runtime of its own (the simulator's configuration until a test sets
    another), without the per-worker reaper: a process-lifetime task that tests start
    themselves when they need it."""
    runtime = Runtime(load_config({}).replace(reaper_enabled=False))
    redis_pools.OUTAGE.reset()  # a process-wide breaker: one test's Redis outage is not the next's
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``@pytest.mark.both_apis``: run the test on the Realtime API and on GPT-Live."""
    if metafunc.definition.get_closest_marker("both_apis"):
        metafunc.parametrize("upstream_api", ["realtime", "live"])


@pytest.fixture
def upstream_api() -> str:
    """The upstream API family tests use (parametrised by ``@pytest.mark.both_apis``)."""
    return "realtime"


@pytest.fixture
def relay_config(simulator: Simulator, upstream_api: str) -> RelayConfig:
    """The relay pointed at the in-process simulator (fast pace), on ``upstream_api``."""
    from tests.relay.conftest import use_config

    env = {"REALTIME_SIMULATOR_URL": simulator.base_url, "RELAY_UPSTREAM_API": upstream_api}
    return use_config(load_config(env))
