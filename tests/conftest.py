"""Project-wide test settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from realtime.config import load_config
from realtime.runtime import Runtime, installed


@pytest.fixture(autouse=True)
def relay_runtime() -> Iterator[Runtime]:
    """Each test gets a runtime of its own (the simulator's configuration until a test sets
    another), without the per-worker reaper: a process-lifetime task that tests start
    themselves when they need it."""
    runtime = Runtime(load_config({}).replace(reaper_enabled=False))
    with installed(runtime):
        yield runtime
