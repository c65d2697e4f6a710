"""The fixtures of the daphne tests: one simulator and the relays under daphne, started on
first use and shared by every test of this package (pytest-xdist runs it whole on one worker:
tests/conftest.py, ``SHARED_SETUP``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from realtime.ops.embedded import start_simulator_thread
from tests.compat.daphne.served import EDGES, Edge, Served, Upstream, _serving
from tests.databases import Templates


@pytest.fixture(scope="package")
def upstream() -> Iterator[Upstream]:
    embedded = start_simulator_thread(pace="fast")
    try:
        yield Upstream(embedded)
    finally:
        embedded.stop()


@pytest.fixture(scope="package")
def relays(
    upstream: Upstream, tmp_path_factory: pytest.TempPathFactory, db_templates: Templates
) -> Iterator[Callable[[str, str], Served]]:
    """relays(variant, api): ``manage.py serve`` ("daphne" or "daphne-changed") on upstream
    API family ``api``, started on first use and shared by the package's tests."""
    started: dict[tuple[str, str], Served] = {}
    with ExitStack() as stack:

        def relay(variant: str, api: str) -> Served:
            if (variant, api) not in started:
                started[variant, api] = stack.enter_context(
                    _serving(variant, api, upstream, tmp_path_factory.mktemp(variant), db_templates)
                )
            return started[variant, api]

        yield relay


@pytest.fixture(params=EDGES)
def edge(request, upstream: Upstream, relays) -> Edge:
    upstream.pace("fast")
    upstream.echo(False)
    return Edge(request.param, upstream, relays)
