"""``manage.py bench``: latency/capacity benchmark of the relay (see docs/benchmark.md)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = (
        "Benchmark the relay against a direct connection and a bare websockets relay: "
        "starts the simulator, the relays and the load generator; writes JSON, Markdown, PNG."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--quick", action="store_true", help="a shorter sweep (~3 min)")
        mode.add_argument("--smoke", action="store_true", help="a few sessions, seconds (CI)")
        parser.add_argument("--out", default="bench-out", help="output folder (default bench-out)")
        parser.add_argument("--sessions", help="comma-separated sweep, e.g. 10,50,100")
        parser.add_argument("--seconds", type=float, help="streaming seconds per load point")
        parser.add_argument("--frames", help="comma-separated frame sizes in bytes (960,256)")
        parser.add_argument("--loadgen-workers", type=int, help="load generator processes")
        parser.add_argument(
            "--relay-cpus",
            help="pin the relays to these CPUs, e.g. 0-3 (a machine with cores to spare: "
            "docs/benchmark.md)",
        )
        parser.add_argument(
            "--load-cpus", help="pin the simulator and the load generator to these CPUs, e.g. 4-7"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from relay_loadtools.bench.runner import PLANS, run

        name = "smoke" if options["smoke"] else "quick" if options["quick"] else "full"
        plan = dataclasses.replace(PLANS[name])
        if options["sessions"]:
            plan.sessions = [int(x) for x in options["sessions"].split(",")]
        if options["seconds"]:
            plan.seconds = options["seconds"]
        if options["frames"]:
            plan.frame_sizes = [int(x) for x in options["frames"].split(",")]
        if options["loadgen_workers"]:
            plan.loadgen_workers = options["loadgen_workers"]
        from relay_loadtools.bench.runner import parse_cpus

        try:
            if options["relay_cpus"]:
                plan.relay_cpus = parse_cpus(options["relay_cpus"])
            if options["load_cpus"]:
                plan.load_cpus = parse_cpus(options["load_cpus"])
        except ValueError as exc:
            raise CommandError(f"--relay-cpus/--load-cpus: {exc}") from None
        out = Path(options["out"])

        def log(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        results = run(plan, out, log)
        for t in results["targets"]:
            mark = "INFO" if t["met"] is None else ("MET " if t["met"] else "MISS")
            log(f"{mark}  {t['target']}: {t['value']}")
        log(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'latency.png'}")
