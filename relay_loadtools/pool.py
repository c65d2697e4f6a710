"""The parent's handle on the load generator processes."""

from __future__ import annotations

import multiprocessing
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any

from relay_loadtools.loadgen import Target, worker_main


class LoadGenPool:
    def __init__(self, workers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def send(self, op: str, args: list[Any]) -> None:
        for conn, arg in zip(self.conns, args, strict=True):
            conn.send((op, arg))

    def collect(self, timeout: float) -> list[dict[str, Any]]:
        replies = []
        for conn in self.conns:
            if not conn.poll(timeout):
                raise TimeoutError("a load generator process did not answer in time")
            replies.append(conn.recv())
        for reply in replies:
            if "error" in reply:
                raise RuntimeError(f"load generator: {reply['error']}")
        return replies

    def split(self, targets: list[Target]) -> list[list[int]]:
        """Session indices per worker (round robin)."""
        n = len(self.conns)
        return [list(range(w, len(targets), n)) for w in range(n)]

    def connect(
        self, targets: list[Target], timeout: float = 60.0, concurrency: int = 16
    ) -> list[dict[str, Any]]:
        """Open sessions on every worker; ``concurrency`` handshakes at a time per worker
        (0: all at once)."""
        parts = self.split(targets)
        args = {"timeout": timeout, "concurrency": concurrency}
        self.send("connect", [{"targets": [asdict(targets[i]) for i in p]} | args for p in parts])
        return self.collect(timeout + 10)

    def close(self) -> None:
        self.send("close", [None] * len(self.conns))
        self.collect(20)

    def stop(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("exit", None))
            except (OSError, BrokenPipeError):
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
