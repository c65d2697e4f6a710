"""``manage.py runsimulator``: run the offline Realtime API simulator until Ctrl-C/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from realtime.simulator import Simulator


def describe(sim: Simulator) -> str:
    return (
        f"Realtime simulator listening on {sim.base_url} "
        f"(openai: {sim.base_url}/v1, azure GA: {sim.base_url}/openai/v1, "
        f"azure preview: {sim.base_url}/openai)"
    )


async def main(
    *,
    host: str = "127.0.0.1",
    port: int = 9100,
    api_key: str | None = None,
    pace: str = "realtime",
    echo: bool = False,
    session_max_seconds: float = 3600.0,
    stop: asyncio.Event | None = None,
    announce: Callable[[str], Any] = print,
) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM arrives)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    sim = Simulator(api_key=api_key, pace=pace, echo=echo, session_max_seconds=session_max_seconds)
    await sim.start(host=host, port=port)
    announce(describe(sim))
    try:
        await stop.wait()
    finally:
        await sim.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


class Command(BaseCommand):
    help = "Run the offline OpenAI / Azure OpenAI Realtime API simulator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9100)
        parser.add_argument("--api-key", default=None)
        parser.add_argument("--pace", choices=["realtime", "fast"], default="realtime")
        parser.add_argument("--echo", action="store_true")
        parser.add_argument("--session-max-seconds", type=float, default=3600.0)

    def handle(self, *args: Any, **options: Any) -> None:
        def announce(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        asyncio.run(
            main(
                host=options["host"],
                port=options["port"],
                api_key=options["api_key"],
                pace=options["pace"],
                echo=options["echo"],
                session_max_seconds=options["session_max_seconds"],
                announce=announce,
            )
        )
