"""`manage.py serve` as a person runs it (embedded simulator, SQLite, no Redis), its output
kept in a file for the tests to read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from realtime.kernel.providers import PROVIDER_VARIABLES
from relay_loadtools.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> str:
        """SIGTERM (a clean shutdown), then everything it printed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.output()


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_VARIABLES}
    for name in ("REDIS_URL", "PORT", "DATABASE_URL"):
        env.pop(name, None)
    env.update(DATABASE_URL=f"sqlite:///{tmp / 'relay.sqlite3'}", PYTHONUNBUFFERED="1")
    return env


@contextmanager
def serving(tmp: Path, *args: str, port_flag: bool = False, **extra_env: str) -> Iterator[Served]:
    """`manage.py serve` on a free port given as $PORT (or ``--port`` with ``port_flag``)."""
    port = free_port()
    env = base_env(tmp) | extra_env
    if port_flag:
        args = (*args, "--port", str(port))
    else:
        env["PORT"] = str(port)
    log = tmp / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", *args],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    served = Served(port, proc, log, env)
    try:
        wait_port(port, proc, timeout=60)
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    from tests.multiprocess.conftest import redis_reachable

    if not redis_reachable():
        message = "Redis is not reachable at 127.0.0.1:6379 (multi-worker tests need it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # never a silent skip in CI
        pytest.skip(message)
    return "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("serve")) as served:
        yield served
