"""Real processes: a simulator, daphne workers sharing Redis and one database file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relay_loadtools.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
REDIS = ("127.0.0.1", 6379)


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not redis_reachable():
        message = "Redis is not reachable at 127.0.0.1:6379 (multi-worker tests need it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # never a silent skip in CI
        pytest.skip(message)
    return "redis://127.0.0.1:6379/0"


@dataclass
class Deployment:
    env: dict[str, str]
    db_path: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    def manage_with(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
        """manage.py with this environment; the result whatever the exit code."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start_worker(
        self, port: int | None = None, **extra_env: str
    ) -> tuple[subprocess.Popen, int]:
        port = port or free_port()
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--no-migrate"],
            cwd=ROOT,
            env=self.env | extra_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)
        wait_port(port, proc)
        return proc, port

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def deployment(redis_url: str, tmp_path: Path, upstream_api: str) -> Iterator[Deployment]:
    """A simulator process plus a shared environment for workers (heartbeat 1 s), on
    `upstream_api` (the Realtime API unless the test is marked ``both_apis``)."""
    db_path = tmp_path / "relay.sqlite3"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": f"sqlite:///{db_path}",
        "REDIS_URL": redis_url,
        "REDIS_CHANNEL_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        "RELAY_HEARTBEAT_SECONDS": "1",
        "DJANGO_SUPERUSER_PASSWORD": "admin-pw",
        "RELAY_ALLOW_ANONYMOUS": "true",
        "RELAY_WORKERS": "1",  # each "worker" here is one daphne process (tests signal its pid)
        # Shared by the workers (tickets from one redeemed on another); a paid upstream needs it.
        "DJANGO_SECRET_KEY": f"test-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "RELAY_UPSTREAM_API": upstream_api,
    }
    deployment = Deployment(env=env, db_path=db_path)
    sim_port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "manage.py", "runsimulator", "--port", str(sim_port), "--pace", "fast"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deployment.procs.append(sim)
    try:
        wait_port(sim_port, sim)
        env["REALTIME_SIMULATOR_URL"] = f"ws://127.0.0.1:{sim_port}"
        deployment.manage("migrate", "--noinput")
        deployment.manage(
            "createsuperuser", "--noinput", "--username", "admin", "--email", "a@x.io"
        )
        yield deployment
    finally:
        deployment.stop()
