"""Real processes: a simulator, daphne workers sharing Redis and one database file."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from relay_loadtools.ports import free_port, wait_port
from tests.databases import Templates
from tests.services import require_redis
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_redis()


class SimulatorProcess:
    """``manage.py runsimulator`` in a process of its own, shared by the tests of one pytest
    process (the upstream of every deployment: it keeps no state between connections);
    started again if it died."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def ensure(self) -> str:
        if self.proc is None or self.proc.poll() is not None:
            port = free_port()
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "runsimulator", "--port", str(port),
                 "--pace", "fast"],
                cwd=ROOT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": str(self.tmp)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            wait_port(port, self.proc)
            self.url = f"ws://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture(scope="session")
def simulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    sim = SimulatorProcess(tmp_path_factory.mktemp("simulator"))
    try:
        yield sim
    finally:
        sim.stop()


@dataclass
class Deployment:
    env: dict[str, str]
    db_path: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: dict[int, Path] = field(default_factory=dict)  # port → what its `serve` printed

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
        log = self.db_path.parent / f"serve-{port}-{len(self.procs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port",
                 str(port), "--no-migrate"],
                cwd=ROOT, env=self.env | extra_env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.procs.append(proc)
        self.logs[port] = log
        wait_port(port, proc)
        return proc, port

    def output(self, port: int) -> str:
        """What the last `serve` started on ``port`` printed so far."""
        return self.logs[port].read_text(errors="replace")

    def listening(self, port: int, count: int, timeout: float = 60) -> None:
        """Until daphne has said ``count`` times that it listens (``serve --workers N``: the
        supervisor's port accepts before its workers serve; a restarted worker says it
        again)."""
        eventually(
            lambda: self.output(port).count("Listening on TCP address") >= count,
            timeout=timeout,
            what=f"{count} daphne workers listening on port {port}",
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def deployment(
    redis_url: str,
    tmp_path: Path,
    upstream_api: str,
    db_templates: Templates,
    simulator_process: SimulatorProcess,
) -> Iterator[Deployment]:
    """The simulator (a process shared by the tests) plus a shared environment for workers
    (heartbeat 1 s): a migrated SQLite file of the test's own with the superuser
    ``admin``/``admin-pw``, Redis keys under a prefix of its own, on `upstream_api` (the
    Realtime API unless the test is marked ``both_apis``)."""
    db_path = tmp_path / "relay.sqlite3"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TMPDIR": str(tmp_path),  # what the processes leave there goes with the test's files
        "DATABASE_URL": db_templates.sqlite(db_path, admin=True),
        "REDIS_URL": redis_url,
        "REDIS_CHANNEL_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        "RELAY_HEARTBEAT_SECONDS": "1",
        "DJANGO_SUPERUSER_PASSWORD": "admin-pw",
        "RELAY_ALLOW_ANONYMOUS": "true",
        "RELAY_WORKERS": "1",  # each "worker" here is one daphne process (tests signal its pid)
        # Shared by the workers (tickets from one redeemed on another); a paid upstream needs it.
        "DJANGO_SECRET_KEY": f"test-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "RELAY_UPSTREAM_API": upstream_api,
        "REALTIME_SIMULATOR_URL": simulator_process.ensure(),
    }
    deployment = Deployment(env=env, db_path=db_path)
    try:
        yield deployment
    finally:
        deployment.stop()
