"""The soak command, briefly: start and end samples exist and nothing grew (fds, tasks)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import AsyncClient

ROOT = Path(__file__).resolve().parents[2]

# Margins for a 12-second run of 2 sessions: sampling happens at steady state (sessions
# connected) both times, so only real leaks (a socket or a task per turn) exceed them.
FD_MARGIN = 4
TASK_MARGIN = 6


@pytest.mark.django_db
async def test_metrics_reports_the_event_loop_task_count() -> None:
    body = (await AsyncClient().get("/metrics")).content.decode()
    match = re.search(r"^relay_asyncio_tasks (\d+(?:\.\d+)?)$", body, re.M)
    assert match and float(match.group(1)) >= 1


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_soak_command_samples_and_nothing_leaks(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "soak",
            "--sessions",
            "2",
            "--minutes",
            "0.2",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    start, end = report["start"], report["end"]
    for sample in (start, end):
        assert {"fds", "rss_kb", "threads", "asyncio_tasks", "active_sessions"} <= set(sample)
        assert sample["fds"] > 0 and sample["rss_kb"] > 0 and sample["asyncio_tasks"] > 0
        assert sample["active_sessions"] == 2
    assert end["fds"] - start["fds"] <= FD_MARGIN, report
    assert end["asyncio_tasks"] - start["asyncio_tasks"] <= TASK_MARGIN, report
    assert report["sessions_connected"] == 2
    assert report["turns"] >= 2, report  # each client got at least one reply
    # A text message may land while a spoken turn is being answered: the upstream's non-fatal
    # refusal is passed on. Anything else (or a close other than the clients' own) is a fault.
    assert set(report["errors"]) <= {"conversation_already_has_active_response"}, report
    assert report["close_codes"] == {"1000": 2}, report
