"""Fixtures for the browser tests: the simulator (in this process), the relay (daphne, a
subprocess) and Debian's Chromium driven by Playwright with a WAV file as the microphone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from realtime.kernel.providers import PROVIDER_VARIABLES
from realtime.ops.embedded import LoopThread, start_simulator_thread
from realtime_simulator import Simulator
from tests.multiprocess.conftest import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
ARTIFACTS = REPO / "test-artifacts"
# Debian's package; RELAY_TEST_CHROMIUM points elsewhere (e.g. to check the CI=true failure).
CHROMIUM = Path(os.environ.get("RELAY_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
PROVIDER_ENV = PROVIDER_VARIABLES

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """Debian's chromium; never a browser downloaded by Playwright."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def simulator(chromium_path: Path) -> Iterator[tuple[Simulator, LoopThread]]:
    embedded = start_simulator_thread(pace="realtime")
    try:
        yield embedded.simulator, embedded.runner
    finally:
        embedded.stop()


@contextmanager
def running_relay(
    sim: Simulator,
    tmp: Path,
    log_name: str = "daphne.log",
    setup: Sequence[Sequence[str]] = (),
    **extra_env: str,
) -> Iterator[str]:
    """The relay under daphne (a subprocess), its upstream `sim`; `extra_env` adds RELAY_*
    (and other) variables, `setup` runs `manage.py` commands after `migrate`."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    env.update(
        DJANGO_SETTINGS_MODULE="relay_site.settings",
        DATABASE_URL=f"sqlite:///{tmp / 'relay.sqlite3'}",
        REALTIME_SIMULATOR_URL=sim.base_url,
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    for args in (["migrate", "--noinput", "-v", "0"], *setup):
        subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, timeout=120
        )
    port = free_port()
    log_path = tmp / "daphne.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "relay_site.asgi:application",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / log_name)


RelayFactory = Callable[..., str]


@pytest.fixture(scope="module")
def relays(
    simulator: tuple[Simulator, LoopThread], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RelayFactory]:
    """relays(api, log_name="daphne.log", setup=(), **env) -> the URL of a relay on upstream
    API family `api` ("realtime" or "live", as RELAY_UPSTREAM_API) with those settings.
    Started on first use and shared by the module's tests: one daphne per family and
    settings, so a module whose tests run on both families starts a second relay only when
    its first GPT-Live test runs. The GPT-Live relay's log is saved as `<name>-live.log`."""
    sim, _ = simulator
    started: dict[tuple[Any, ...], str] = {}
    with ExitStack() as stack:

        def relay(
            api: str, log_name: str = "daphne.log", setup: Sequence[Sequence[str]] = (), **env: str
        ) -> str:
            key = (api, tuple(sorted(env.items())), tuple(map(tuple, setup)))
            if key not in started:
                tmp = tmp_path_factory.mktemp(f"relay-{api}")
                if api != "realtime":
                    log_name = log_name.replace(".log", f"-{api}.log")
                started[key] = stack.enter_context(
                    running_relay(sim, tmp, log_name, setup, RELAY_UPSTREAM_API=api, **env)
                )
            return started[key]

        yield relay


@pytest.fixture
def relay_url(relays: RelayFactory, upstream_api: str) -> str:
    """The relay with its default settings on `upstream_api` (the Realtime API unless the test
    is marked ``both_apis``): the service (server VAD) or the model (GPT-Live) ends turns."""
    return relays(upstream_api)


def suffix(upstream_api: str) -> str:
    """For artifact names: "" on the Realtime API, "-live" on GPT-Live."""
    return "" if upstream_api == "realtime" else f"-{upstream_api}"


# Module scope: sync Playwright keeps an event loop marked running in the main thread while it
# is open, which breaks every async test that runs after it in the same session.
@pytest.fixture(scope="module")
def playwright_driver(chromium_path: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def launch(playwright_driver: Any, chromium_path: Path) -> Iterator[Callable[[Path], Any]]:
    """launch(wav) -> a Chromium whose fake microphone plays `wav` (looped)."""
    browsers: list[Any] = []

    def _launch(wav: Path) -> Any:
        browser = playwright_driver.chromium.launch(
            executable_path=str(chromium_path),
            headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}"],
        )
        browsers.append(browser)
        return browser

    yield _launch
    for browser in browsers:
        browser.close()


def write_wav(path: Path, parts: list[Path | float]) -> Path:
    """Concatenate 24 kHz mono PCM16 fixture files (Path) and silences (float seconds)."""
    frames: list[bytes] = []
    for part in parts:
        if isinstance(part, Path):
            with wave.open(str(part)) as w:
                assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
                frames.append(w.readframes(w.getnframes()))
        else:
            frames.append(b"\0\0" * int(24000 * part))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(b"".join(frames))
    return path


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class Wire:
    """The JSON text frames the page sent and received on its relay socket, in order."""

    def __init__(self, page: Any) -> None:
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        page.on("websocket", self._attach)

    def _attach(self, ws: Any) -> None:
        ws.on("framesent", lambda payload: self._keep(self.sent, payload))
        ws.on("framereceived", lambda payload: self._keep(self.received, payload))

    @staticmethod
    def _keep(frames: list[dict[str, Any]], payload: str | bytes) -> None:
        if isinstance(payload, str):
            frames.append(json.loads(payload))

    def sent_types(self) -> list[str]:
        return [m["type"] for m in self.sent]

    def received_kinds(self) -> list[str]:
        return [m.get("action", m["type"]) for m in self.received]
