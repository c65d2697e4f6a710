"""`manage.py soak`: N real-time sessions against one relay worker for M minutes; leak check.

The run itself is ``relay_loadtools.soak``; this prints its table and writes its JSON.
"""

from __future__ import annotations

import json
import signal
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay_loadtools import soak
from relay_loadtools.children import ChildFailed
from relay_loadtools.ports import free_port


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class Command(BaseCommand):
    help = "Soak test: N real-time sessions on one relay worker for M minutes; leak figures."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sessions", type=int, default=20)
        parser.add_argument("--minutes", type=float, default=3.0)
        parser.add_argument("--port", type=int, default=0, help="relay port (default: a free one)")
        parser.add_argument("--simulator-port", type=int, default=0)
        parser.add_argument("--out", default="soak-out/soak.json")

    def handle(self, *args: Any, **options: Any) -> None:
        sessions, minutes = options["sessions"], options["minutes"]
        if not 1 <= sessions <= 1000 or not 0 < minutes <= 24 * 60:
            raise CommandError("--sessions must be 1..1000 and --minutes in (0, 1440]")
        port = options["port"] or free_port()
        sim_port = options["simulator_port"] or free_port()
        out = Path(options["out"])
        # SIGTERM becomes SystemExit, so the run's cleanup stops the subprocesses.
        previous = signal.signal(signal.SIGTERM, _raise_exit)
        try:
            with tempfile.TemporaryDirectory(prefix="relay-soak-") as tmp:
                report = soak.run(Path(tmp), sessions, minutes, port, sim_port, self.stdout.write)
        except KeyboardInterrupt:
            raise CommandError("interrupted; subprocesses stopped", returncode=130) from None
        except (ChildFailed, soak.SoakError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        self.stdout.write(soak.format_table(report))
        self.stdout.write(f"JSON written to {out}")
