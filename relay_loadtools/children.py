"""Child processes of a load run: started with an environment and a log file, always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from relay_loadtools.ports import ChildExited, wait_http, wait_port


class ChildFailed(RuntimeError):
    """A child did not become ready; the message ends with the tail of its log."""


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Children:
    """Every process a run starts, each in its own process group with its output in
    ``log_dir/<name>.log``; ``stop_all`` ends them (SIGTERM, then SIGKILL after a grace)."""

    def __init__(self, log_dir: Path, grace_s: float = 10.0) -> None:
        self.log_dir = log_dir
        self.grace_s = grace_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(
        self,
        name: str,
        argv: list[str],
        env: Mapping[str, str],
        *,
        port: int | None = None,
        http: str | None = None,
        timeout: float = 30.0,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` with exactly ``env``; with ``port`` or ``http``, also wait until it
        listens there or answers 200 (else stop it and raise ChildFailed)."""
        with self.log(name).open("wb") as out:
            proc = subprocess.Popen(
                argv,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: ours to end, and Ctrl-C reaches us only
            )
        self.procs[name] = proc
        try:
            if port is not None:
                wait_port(port, proc, timeout)
            if http is not None:
                wait_http(http, proc, timeout)
        except (ChildExited, TimeoutError) as exc:
            self.stop(name)
            raise ChildFailed(f"{name}: {exc}\n{tail(self.log(name))}") from None
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            _stop([proc], self.grace_s)

    def stop_all(self) -> None:
        procs = list(reversed(self.procs.values()))
        self.procs.clear()
        _stop(procs, self.grace_s)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop(procs: list[subprocess.Popen[bytes]], grace_s: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
