"""Free local ports, and waiting until a child process listens on one or answers over HTTP."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request

HOST = "127.0.0.1"


class ChildExited(RuntimeError):
    """The process being waited for ended before it was ready."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        super().__init__(f"process {proc.args!r} exited with {proc.returncode}")
        self.returncode = proc.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0
) -> None:
    """Until something accepts TCP connections on ``port`` (ChildExited if ``proc`` ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ChildExited(proc)
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    """Until ``url`` answers 200 (ChildExited if ``proc`` ends first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ChildExited(proc)
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")
