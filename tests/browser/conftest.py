"""Fixtures for the browser tests: the simulator (in this process), the relay (daphne, a
subprocess) and Debian's Chromium driven by Playwright with a WAV file as the microphone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from realtime.config import PROVIDER_VARIABLES
from realtime.embedded import LoopThread, start_simulator_thread
from realtime.simulator import Simulator
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
    sim: Simulator, tmp: Path, log_name: str = "daphne.log", **extra_env: str
) -> Iterator[str]:
    """The relay under daphne (a subprocess), its upstream `sim`; `extra_env` adds RELAY_*."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    env.update(
        DJANGO_SETTINGS_MODULE="relay_site.settings",
        DATABASE_URL=f"sqlite:///{tmp / 'relay.sqlite3'}",
        REALTIME_SIMULATOR_URL=sim.base_url,
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
        timeout=120,
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


@pytest.fixture(scope="module")
def relay_url(
    simulator: tuple[Simulator, LoopThread], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The relay with its default settings (server VAD ends the user's turns)."""
    sim, _ = simulator
    with running_relay(sim, tmp_path_factory.mktemp("relay")) as url:
        yield url


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
