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
metrics.SESSIONS_OPENED.inc({opened})
metrics.ACTIVE_SESSIONS.inc({active})
metrics.family("relay_audio_bytes").labels("in").inc(960)
{tail}
"""
SCRAPE = "print(metrics.render().decode())"


def run(tmp_path: Path, opened: int, active: int, tail: str = "") -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "relay_site.settings",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    code = WORKER.format(opened=opened, active=active, tail=tail)
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
    run(tmp_path, opened=2, active=2)  # a worker that has exited since
    text = run(tmp_path, opened=3, active=1, tail=SCRAPE)  # the worker that answers the scrape
    assert sample(text, "relay_sessions_opened_total") == 5
    assert sample(text, 'relay_audio_bytes_total{direction="in"}') == 1920
    assert sample(text, "relay_active_sessions") == 1  # the exited worker's gauge is gone
