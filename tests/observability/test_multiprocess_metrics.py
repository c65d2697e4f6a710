"""PROMETHEUS_MULTIPROC_DIR: any worker's /metrics sums every worker process of the host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import django
django.setup()
from realtime.ops import metrics
metrics.setup_process()
metrics.SESSIONS_OPENED.labels("browser").inc({opened})
metrics.ACTIVE_SESSIONS.labels("browser").inc({active})
metrics.ACTIVE_SESSIONS.labels("phone").inc({phone})
metrics.count_refusal("too_many_connects", "phone")
metrics.family("relay_audio_bytes").labels("in").inc(960)
{tail}
"""
SCRAPE = "print(metrics.render().decode())"


def run(tmp_path: Path, opened: int, active: int, phone: int = 0, tail: str = "") -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "relay_site.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    code = WORKER.format(opened=opened, active=active, phone=phone, tail=tail)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the scrape")


def test_a_scrape_sums_all_workers_and_active_sessions_count_live_workers_only(tmp_path):
    run(tmp_path, opened=2, active=2, phone=1)  # a worker that has exited since
    text = run(tmp_path, opened=3, active=1, tail=SCRAPE)  # the worker that answers the scrape
    # Each edge's sessions are summed over the workers, apart from the other edge's.
    assert sample(text, 'relay_sessions_opened_total{edge="browser"}') == 5
    assert sample(text, 'relay_sessions_opened_total{edge="phone"}') == 2  # refused connects
    assert sample(text, 'relay_sessions_closed_total{edge="phone",reason="too_many_connects"}') == 2
    assert sample(text, 'relay_audio_bytes_total{direction="in"}') == 1920
    # The exited worker's gauges are gone: its phone session no longer counts as open.
    assert sample(text, 'relay_active_sessions{edge="browser"}') == 1
    assert sample(text, 'relay_active_sessions{edge="phone"}') == 0


def test_a_supervisor_removes_the_metrics_dirs_of_supervisors_that_were_killed(
    tmp_path: Path, monkeypatch
):
    """``serve --workers N`` removes its metrics directory when it exits; one killed (kill -9)
    cannot, so the next one removes what dead supervisors left, and nothing else."""
    import tempfile

    from realtime.ops.supervisor import WorkerPool

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"relay-metrics-{gone.pid}-x1"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"\0" * 8)
    running = tmp_path / f"relay-metrics-{os.getpid()}-x2"  # a supervisor still alive
    running.mkdir()
    unrelated = tmp_path / "relay-metrics-notes"
    unrelated.mkdir()

    pool = WorkerPool(argv=lambda fd: [], env={}, sockets=[], drain_seconds=1)
    created = Path(pool._metrics_dir() or "")

    assert not stale.exists()
    assert running.is_dir() and unrelated.is_dir()
    assert created.parent == tmp_path and created.is_dir()
    assert created.name.startswith(f"relay-metrics-{os.getpid()}-")
    assert pool.env["PROMETHEUS_MULTIPROC_DIR"] == str(created)
