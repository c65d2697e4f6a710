"""An asyncio loop on a thread of its own, and the offline simulator run on one.

`manage.py serve` uses it to run the simulator beside daphne on embedded defaults; tests use
it to keep a simulator (or a relay) on a loop that other threads can call into.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread; ``run`` submits a coroutine and waits for its result."""

    def __init__(self, name: str = "realtime-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


@dataclass
class EmbeddedSimulator:
    simulator: Any  # realtime_simulator.Simulator; its records are read by tests
    runner: LoopThread

    @property
    def base_url(self) -> str:
        return self.simulator.base_url

    def stop(self) -> None:
        try:
            self.runner.run(self.simulator.stop(), timeout=10)
        finally:
            self.runner.stop()


def start_simulator_thread(
    *, host: str = "127.0.0.1", port: int = 0, pace: str = "realtime", api_key: str | None = None
) -> EmbeddedSimulator:
    """Start the simulator on a daemon thread with its own event loop; return once it listens."""
    from realtime_simulator import Simulator

    runner = LoopThread("realtime-simulator")
    simulator = Simulator(pace=pace, api_key=api_key)
    try:
        runner.run(simulator.start(host=host, port=port), timeout=10)
    except Exception as exc:
        runner.stop()
        raise RuntimeError(f"the simulator could not start: {exc}") from exc
    return EmbeddedSimulator(simulator=simulator, runner=runner)
