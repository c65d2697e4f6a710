"""The offline simulator run on a thread of its own, for `manage.py serve` on embedded defaults."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class EmbeddedSimulator:
    base_url: str
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    simulator: Any  # realtime.simulator.Simulator; its records are read by tests

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def start_simulator_thread(
    *, host: str = "127.0.0.1", port: int = 0, pace: str = "realtime", api_key: str | None = None
) -> EmbeddedSimulator:
    """Start the simulator on a daemon thread with its own event loop; return once it listens."""
    from realtime.simulator import Simulator

    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []
    simulator = Simulator(pace=pace, api_key=api_key)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(simulator.start(host=host, port=port))
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="realtime-simulator", daemon=True)
    thread.start()
    started.wait(timeout=10)
    if failure:
        raise RuntimeError(f"the simulator could not start: {failure[0]}")
    return EmbeddedSimulator(
        base_url=simulator.base_url, loop=loop, thread=thread, simulator=simulator
    )
