"""Profile one daphne worker of the relay under load with py-spy.

    python -m relay_loadtools.bench.profiling [--sessions 40] [--seconds 10] [--frames 960] \
        [--storm 200] [--out bench-out]

Starts the simulator and one worker (``serve --workers 1``), streams N sessions (or, with
``--storm N``, opens N sessions at once again and again), and runs ``py-spy record`` on the
worker meanwhile; writes ``profile-<frames>.txt`` / ``profile-storm.txt`` (raw stacks) and
prints where the time went: own time per function, then time including callees.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from relay_loadtools.bench.measure import Contender, run_point
from relay_loadtools.bench.probes import connect_storm
from relay_loadtools.bench.runner import relay_env, serve_argv, simulator_argv
from relay_loadtools.children import Children
from relay_loadtools.loadgen import Target
from relay_loadtools.pool import LoadGenPool
from relay_loadtools.ports import free_port
from relay_loadtools.stack import child_env, migrate


def _top(collapsed: Path, n: int = 25, inclusive: bool = False) -> list[tuple[str, float]]:
    """Time per function as a share of all samples: its own (leaf frames), or with callees."""
    seen: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        frames = stack.split(";")
        for name in set(frames) if inclusive else frames[-1:]:
            seen[name] += int(count)
    return [(name, c / total) for name, c in seen.most_common(n)] if total else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=960)
    parser.add_argument("--storm", type=int, help="profile connect storms of N clients instead")
    parser.add_argument("--out", default="bench-out")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        parser.exit(2, "py-spy is not installed: pip install -c constraints.txt -e '.[bench]'\n")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    children = Children(out)
    db = Path(tempfile.gettempdir()) / f"bench-profile-{os.getpid()}.sqlite3"
    pool = None
    try:
        sim_port, port = free_port(), free_port()
        children.start("simulator", simulator_argv(sim_port), child_env(), port=sim_port)
        env = relay_env(f"ws://127.0.0.1:{sim_port}", db)
        migrate(env, out / "migrate.log")
        pid = children.start("relay-profiled", serve_argv(port, 1), env, port=port).pid
        origin = f"http://127.0.0.1:{port}"
        relay = Contender("daphne-1", "", [Target("relay", "127.0.0.1", port, "/realtime", origin)])
        relay.pids = [pid]
        pool = LoadGenPool(2)
        stem = out / (f"profile-{args.frames}" if not args.storm else "profile-storm")
        record = [spy, "record", "-p", str(pid), "-d", str(int(args.seconds)), "-r", "200"]
        spies: list[subprocess.Popen[bytes]] = []

        def start_spy() -> None:  # only the streaming window, not the connects
            spies.append(subprocess.Popen([*record, "-f", "raw", "-o", f"{stem}.txt"]))

        if args.storm:
            start_spy()
            while spies[0].poll() is None:
                print(connect_storm(pool, relay, args.storm, 1))
        else:
            point = run_point(
                pool, relay, args.sessions, args.frames, args.seconds, {"relay0": pid}, start_spy
            )
            keys = ("p50_ms", "p99_ms", "frames_lost", "relay_cpu_us_per_frame")
            print({k: point[k] for k in keys})
        spies[0].wait(timeout=60)
        for inclusive in (False, True):
            print("with callees:" if inclusive else "own time:")
            for name, share in _top(Path(f"{stem}.txt"), 40 if inclusive else 25, inclusive):
                print(f"{share * 100:5.1f}%  {name}")
    finally:
        if pool is not None:
            pool.stop()
        children.stop_all()
        db.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
