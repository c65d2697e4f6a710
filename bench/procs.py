"""Child processes of a benchmark run (simulator, relays) and /proc readings."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine spent busy (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def wait_quiet(limit_cores: float = 0.3, max_wait_s: float = 10.0) -> float:
    """Wait (bounded) until the rest of the machine is nearly idle; the busy share seen last."""
    deadline = time.monotonic() + max_wait_s
    while True:
        b0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(0.5)
        share = (machine_busy_seconds() - b0) / (time.monotonic() - t0)
        if share <= limit_cores or time.monotonic() >= deadline:
            return round(share, 2)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open within {timeout} s")


class Children:
    """Every process the run starts; ``stop_all`` ends them (SIGTERM, then SIGKILL)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str], port: int) -> int:
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs[name] = proc
        try:
            wait_port(port, proc)
        except Exception:
            self.stop(name)
            raise
        return proc.pid

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def python() -> str:
    return sys.executable


def simulator_argv(port: int) -> list[str]:
    return [python(), "manage.py", "runsimulator", "--pace", "fast", "--echo", "--port", str(port)]


def bare_relay_argv(port: int, upstream: str) -> list[str]:
    # One append per client frame: the obvious framing of a lean relay.
    return [python(), "-m", "bench.bare_relay", "--port", str(port), "--upstream", upstream]


def daphne_argv(port: int) -> list[str]:
    # The same flags as ``manage.py serve`` (which also migrates and may start a simulator).
    return [
        python(), "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
        "--ping-interval", "20", "--ping-timeout", "30",
        "--application-close-timeout", "10", "--websocket_timeout", "-1",
        "--websocket_connect_timeout", "10", "--websocket-max-message-size", str(1024 * 1024),
        "-v", "0", "relay_site.asgi:application",
    ]  # fmt: skip


def relay_env(sim_url: str, db_path: Path) -> dict[str, str]:
    return {
        "REALTIME_SIMULATOR_URL": sim_url,
        "DATABASE_URL": f"sqlite:///{db_path}",
        "DJANGO_SETTINGS_MODULE": "relay_site.settings",
        "RELAY_LOG_LEVEL": "WARNING",
    }


def migrate(env: dict[str, str], log_dir: Path) -> None:
    with open(log_dir / "migrate.log", "wb") as log:
        subprocess.run(
            [python(), "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            check=True, timeout=120,
        )  # fmt: skip
