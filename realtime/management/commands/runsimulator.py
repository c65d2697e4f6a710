"""``manage.py runsimulator``: run the offline Realtime / GPT-Live simulator until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime_simulator import Simulator
from realtime_simulator.server import DEFAULT_KEEP_RECORDS


def describe(sim: Simulator) -> str:
    return (
        f"Realtime simulator listening on {sim.base_url} "
        f"(openai: {sim.base_url}/v1, azure GA: {sim.base_url}/openai/v1, "
        f"azure preview: {sim.base_url}/openai; "
        f"GPT-Live: {sim.base_url}/v1/live/sessions, {sim.base_url}/openai/v1/live/sessions)"
    )


async def main(
    *,
    host: str = "127.0.0.1",
    port: int = 9100,
    api_key: str | None = None,
    pace: str = "realtime",
    echo: bool = False,
    session_max_seconds: float = 3600.0,
    reuse_port: bool = False,
    keep_records: int = DEFAULT_KEEP_RECORDS,
    stop: asyncio.Event | None = None,
    announce: Callable[[str], Any] = print,
) -> None:
    """Run until ``stop`` is set (or SIGINT/SIGTERM arrives)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    sim = Simulator(
        api_key=api_key,
        pace=pace,
        echo=echo,
        session_max_seconds=session_max_seconds,
        keep_records=keep_records,
    )
    await sim.start(host=host, port=port, reuse_port=reuse_port)
    announce(describe(sim))
    try:
        await stop.wait()
    finally:
        await sim.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


class Command(BaseCommand):
    help = "Run the offline OpenAI / Azure OpenAI Realtime and GPT-Live API simulator."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9100)
        parser.add_argument("--api-key", default=None)
        parser.add_argument("--pace", choices=["realtime", "fast"], default="realtime")
        parser.add_argument("--echo", action="store_true")
        parser.add_argument("--session-max-seconds", type=float, default=3600.0)
        parser.add_argument(
            "--keep-records",
            type=int,
            default=DEFAULT_KEEP_RECORDS,
            help="keep the per-connection records of the newest N connections (memory stays flat)",
        )
        parser.add_argument(
            "--processes",
            type=int,
            default=1,
            help="serve from N processes sharing the port (SO_REUSEPORT), for load tests",
        )
        parser.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args: Any, **options: Any) -> None:
        def announce(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        processes = options["processes"]
        if options["keep_records"] < 1:
            raise CommandError("--keep-records must be at least 1")
        if processes > 1 and options["port"] == 0:
            raise CommandError("--processes needs a fixed --port")
        helpers = [self._spawn_helper(options) for _ in range(processes - 1)]
        try:
            self._run(options, announce, reuse_port=processes > 1 or options["reuse_port"])
        finally:
            for helper in helpers:
                helper.terminate()
            for helper in helpers:
                helper.wait(10)

    @staticmethod
    def _spawn_helper(options: dict[str, Any]) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "django", "runsimulator", "--reuse-port",
                "--host", options["host"], "--port", str(options["port"]),
                "--pace", options["pace"],
                "--session-max-seconds", str(options["session_max_seconds"]),
                "--keep-records", str(options["keep_records"])]  # fmt: skip
        if options["api_key"]:
            argv += ["--api-key", options["api_key"]]
        if options["echo"]:
            argv.append("--echo")
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL)

    @staticmethod
    def _run(options: dict[str, Any], announce: Callable[[str], Any], reuse_port: bool) -> None:
        asyncio.run(
            main(
                host=options["host"],
                port=options["port"],
                api_key=options["api_key"],
                pace=options["pace"],
                echo=options["echo"],
                session_max_seconds=options["session_max_seconds"],
                reuse_port=reuse_port,
                keep_records=options["keep_records"],
                announce=announce,
            )
        )
