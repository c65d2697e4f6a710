"""Project-wide test settings: markers, how pytest-xdist shares out the tests, the migrated
database templates, and the fixtures every test gets.

Markers (pyproject.toml): ``slow`` is added here to every ``browser`` and ``multiprocess``
test; the other tests that serve a relay as a process or run long carry it in their modules
(the installed copy, bench and soak smoke runs, fuzzing, the purge race, records written by
``manage.py shell`` on two databases, ``talk`` and ``serve`` as a person runs them, sessions
through real daphne relays, the compose commands). ``pytest -m "not slow"`` is the everyday
loop.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from realtime.compat import redis_pools
from realtime.kernel.config import RelayConfig, load_config
from realtime.ops.runtime import Runtime, installed
from realtime_simulator import Simulator
from tests.databases import Templates, drop_postgres_templates, run_directory

# Modules whose tests share a module-scoped relay, browser or build (each module of a folder
# named here), and packages whose tests share package-scoped relays (the whole package):
# pytest-xdist runs each of them whole on one worker (``xdist_group``); every other test is
# handed out on its own.
SHARED_SETUP = (
    "tests/browser/",
    "tests/cli/test_talk.py",
    "tests/test_installed_copy.py",
)
SHARED_PACKAGES = ("tests/compat/daphne/",)
# The longest work first, so that no worker is still busy with one long test when the others
# are done: a wheel built then the bench smoke and soak runs from it, fuzzing, the largest
# browser module, `talk`, sessions through real daphne relays, the purge race. Then the other
# slow tests, then the rest, each in collection order.
LONGEST_FIRST = (
    "tests/test_installed_copy.py",
    "tests/security/test_fuzz.py",
    "tests/browser/test_demo_page.py",
    "tests/cli/test_talk.py",
    "tests/compat/daphne/",
    "tests/records/test_purge.py",
)


def _relative(item: pytest.Item) -> str:
    return os.path.relpath(str(item.path), str(item.config.rootpath)).replace(os.sep, "/")


def _rank(item: pytest.Item) -> int:
    path = _relative(item)
    slow = item.get_closest_marker("slow") is not None
    for rank, prefix in enumerate(LONGEST_FIRST if slow else ()):
        if path.startswith(prefix):
            return rank
    return len(LONGEST_FIRST) + (0 if slow else 1)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = _relative(item)
        if path.startswith("tests/browser/") or item.get_closest_marker("multiprocess"):
            item.add_marker(pytest.mark.slow)
        if path.startswith(SHARED_PACKAGES):
            package = next(p for p in SHARED_PACKAGES if path.startswith(p))
            item.add_marker(pytest.mark.xdist_group(package))
        elif path.startswith(SHARED_SETUP):
            item.add_marker(pytest.mark.xdist_group(path))


class _LongestFirst:
    """The order pytest-xdist hands the work out in (pyproject: --no-loadscope-reorder); after
    pytest-django's own ordering."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items.sort(key=_rank)


WORKERS = 4  # two cores; most of a test's time is waiting on sockets and child processes


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): ``RELAY_TEST_WORKERS`` if set, none when every
    argument names a test (``path::name``: starting workers would cost more than it saves),
    else ``WORKERS``."""
    if os.environ.get("RELAY_TEST_WORKERS"):
        return int(os.environ["RELAY_TEST_WORKERS"])
    if config.args and all("::" in arg for arg in config.args):
        return 0
    return WORKERS


class _RunId:
    """pytest-xdist's controller gives its workers one id for the run (template names)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def pytest_configure_node(self, node: object) -> None:
        node.workerinput["relay_run_id"] = self.run_id  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_LongestFirst(), "relay-longest-first")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.relay_run_id = workerinput["relay_run_id"]  # type: ignore[attr-defined]
        return
    config.relay_run_id = uuid.uuid4().hex[:10]  # type: ignore[attr-defined]
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_RunId(config.relay_run_id), "relay-run-id")  # type: ignore[attr-defined]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller (or a run without workers) drops the run's PostgreSQL templates."""
    if not hasattr(session.config, "workerinput"):
        factory = getattr(session.config, "_tmp_path_factory", None)
        if factory is not None:
            drop_postgres_templates(run_directory(factory.getbasetemp()))


@pytest.fixture(scope="session")
def db_templates(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Templates:
    """The run's migrated databases to copy (tests/databases.py)."""
    run_dir = run_directory(tmp_path_factory.getbasetemp())
    return Templates(run_dir, request.config.relay_run_id)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """SQLite: this process's test database in a file of its own (WAL, as the embedded setup
    runs), not in memory. In-memory SQLite shares one cache between threads, where a tool's
    read in the tool pool met the registry thread's write lock at once ("database table is
    locked") instead of waiting for it: a test failing under load."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        path = tmp_path_factory.getbasetemp() / "test-database.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(path)


@pytest.fixture(autouse=True, scope="session")
def quick_password_hashing() -> Iterator[None]:
    """In this process only: passwords hashed with one cheap round instead of Django's
    PBKDF2 (a million iterations, ~0.3 s of CPU per login or user made), as Django's testing
    docs advise. The relays the tests start as processes hash as deployed."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


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
