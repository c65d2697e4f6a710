"""``serve --workers N``: N daphne processes serving one port, supervised.

The parent binds N listening sockets to the port with ``SO_REUSEPORT`` and hands one to each
worker (``daphne --fd``); the kernel spreads new connections over the sockets by a hash of
the connection. (One socket shared by every worker was tried first: Twisted's workers all
wake on it and the same one wins nearly every accept, so a burst of 12 connections went to
one worker of two.) The parent keeps the sockets open, so a worker's queued connections
wait for its replacement instead of being refused. The parent restarts a worker that
dies (with a back-off if it keeps dying at start), gives all workers one metrics view
(``PROMETHEUS_MULTIPROC_DIR``: any worker's /metrics sums every worker), and on SIGTERM or
SIGINT asks every worker to drain (each tells its clients 1012 and closes its upstreams) and
waits for them, bounded by ``RELAY_DRAIN_SECONDS`` plus a margin.

A worker ends when its supervisor dies, however it dies (``kill -9`` included): on Linux the
kernel sends it SIGTERM (``PR_SET_PDEATHSIG``), so it drains and exits instead of holding the
port as an orphan nobody restarts or stops.

Several processes need the Redis channel layer: with the in-memory layer an administrator's
terminate could not reach a session on another process, so ``serve`` refuses ``--workers``
above 1 without ``REDIS_URL``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("realtime.ops.supervisor")

QUICK_EXIT_S = 10.0  # a worker that dies sooner than this after starting is crash-looping
MAX_BACKOFF_S = 30.0
POLL_S = 0.2
# Connections the kernel queues per listening socket before the server accepts them. A burst
# of clients beyond it (a restart, a network blip) has its SYNs dropped and retried a whole
# second later; Twisted's default is 50. (Linux caps it at net.core.somaxconn.)
LISTEN_BACKLOG = 2048


def listening_sockets(
    host: str, port: int, count: int, backlog: int = LISTEN_BACKLOG
) -> list[socket.socket]:
    """``count`` listening sockets on one port (``SO_REUSEPORT``), one per worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = []
    for _ in range(count):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


PR_SET_PDEATHSIG = 1


def follow_supervisor(supervisor_pid: int) -> None:
    """Called in a worker at start: SIGTERM (the drain) when the supervisor dies. If it has
    died already, exit now."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("cannot follow the supervisor (prctl: errno %d)", ctypes.get_errno())
    if os.getppid() != supervisor_pid:
        log.error("the supervisor (pid %d) is gone; this worker exits", supervisor_pid)
        sys.exit(1)


@dataclass
class Slot:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0  # quick exits in a row
    restart_at: float = 0.0


@dataclass
class WorkerPool:
    argv: Callable[[int], Sequence[str]]  # the worker's command line, given the socket's fd
    env: Mapping[str, str]
    sockets: list[socket.socket]  # one per worker
    drain_seconds: float
    slots: list[Slot] = field(default_factory=list)
    stopping: bool = False
    restarts: int = 0

    def run(self) -> int:
        metrics_dir = self._metrics_dir()
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.slots = [Slot(i) for i in range(len(self.sockets))]
            for slot in self.slots:
                self._start(slot)
            while not self.stopping:
                self._watch()
                time.sleep(POLL_S)
            return self._drain()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for sock in self.sockets:
                sock.close()
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.slots if s.proc is not None and s.proc.poll() is None]

    def _metrics_dir(self) -> str | None:
        """One metrics view: a shared multiprocess directory, unless the operator set one."""
        if self.env.get("PROMETHEUS_MULTIPROC_DIR"):
            return None
        path = tempfile.mkdtemp(prefix="relay-metrics-")
        self.env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": path}
        return path

    def _start(self, slot: Slot) -> None:
        fd = self.sockets[slot.index].fileno()
        slot.proc = subprocess.Popen(list(self.argv(fd)), env=dict(self.env), pass_fds=(fd,))
        slot.started = time.monotonic()
        log.info("worker %d started (pid %d)", slot.index, slot.proc.pid)

    def _watch(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            proc = slot.proc
            if proc is not None and proc.poll() is not None:
                self._forget(proc.pid)
                quick = now - slot.started < QUICK_EXIT_S
                slot.failures = slot.failures + 1 if quick else 0
                delay = min(MAX_BACKOFF_S, 2.0 ** (slot.failures - 1)) if slot.failures else 0.0
                log.error(
                    "worker %d (pid %d) exited with %s; restarting in %.0f s",
                    slot.index,
                    proc.pid,
                    proc.returncode,
                    delay,
                )
                slot.proc, slot.restart_at = None, now + delay
            if slot.proc is None and not self.stopping and now >= slot.restart_at:
                self._start(slot)
                self.restarts += 1

    def _forget(self, pid: int) -> None:
        """A dead worker's live gauges (active sessions) must leave the metrics view."""
        if self.env.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.env["PROMETHEUS_MULTIPROC_DIR"])

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _drain(self) -> int:
        """Every worker drains (SIGTERM); stragglers are killed after the drain budget."""
        running = [s.proc for s in self.slots if s.proc is not None and s.proc.poll() is None]
        log.info("stopping: draining %d worker(s)", len(running))
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.drain_seconds + 5
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait()
            self._forget(proc.pid)
        return 0


def default_workers(redis_configured: bool) -> int:
    """Every core with the Redis layer (sessions must be reachable from any process); one
    process with the in-memory layer."""
    return (os.cpu_count() or 1) if redis_configured else 1
