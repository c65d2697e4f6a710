"""`manage.py purge_transcripts`: retention by `at`, in batches, idempotent, and safe when
every worker's cron runs it at the same moment."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from realtime.models import ConversationEntry, RealtimeSession
from tests.relay.conftest import configure

from .conftest import add_entries, make_session

ROOT = Path(__file__).resolve().parents[2]


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_transcripts", *args, stdout=out)
    return out.getvalue()


def texts() -> list[str]:
    return sorted(ConversationEntry.objects.values_list("text", flat=True))


@pytest.fixture
def aged(db) -> RealtimeSession:
    session = make_session()
    now = timezone.now()
    for days, text in ((45, "45 days"), (31, "31 days"), (29, "29 days"), (0, "today")):
        add_entries(session, ("user", "typed", text, {}), at=now - timedelta(days=days))
    return session


def test_entries_older_than_the_retention_are_deleted(aged):
    assert "purged 2 conversation entries older than 30 days" in purge()
    assert texts() == ["29 days", "today"]
    assert RealtimeSession.objects.filter(pk=aged.pk).exists()  # the session row (usage) stays


def test_a_second_run_finds_nothing_to_do(aged):
    purge()
    assert "purged 0 conversation entries" in purge()
    assert texts() == ["29 days", "today"]


def test_days_and_the_retention_setting_choose_the_cutoff(aged):
    configure(transcript_retention_days=40)
    assert "purged 1 " in purge()
    assert "purged 2 " in purge("--days", "7")
    assert texts() == ["today"]
    configure(transcript_retention_days=0)
    assert "kept forever" in purge()
    assert texts() == ["today"]


def test_deletes_go_in_batches(db):
    session = make_session()
    old = timezone.now() - timedelta(days=60)
    add_entries(session, *[("user", "typed", f"old {i}", {}) for i in range(7)], at=old)
    add_entries(session, ("user", "typed", "new", {}))
    with CaptureQueriesContext(connection) as queries:
        assert "purged 7 " in purge("--batch-size", "3")
    deletes = [q for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 3 + 3 + 1, never one statement over the whole table
    assert texts() == ["new"]


# ---- several processes at once, on the databases the relay runs on ---------------------------

SEED = """
from datetime import timedelta
from django.utils import timezone
from realtime.models import ConversationEntry, RealtimeSession
now = timezone.now()
for n in range(10):
    s = RealtimeSession.objects.create(provider="simulator", model="m", worker_id="w:1")
    ConversationEntry.objects.bulk_create(
        ConversationEntry(session=s, seq=i, at=now - timedelta(days=40 if i <= 3000 else 1),
                          role="user", kind="typed", text=f"entry {i}")
        for i in range(1, 3011))
"""
COUNT = "from realtime.models import ConversationEntry as E; print(E.objects.count())"
# `manage.py purge_transcripts` in a process that sets Django up first, says it is ready
# (a file beside the `go` file) and waits for `go`: the four purges then start together,
# not one Django start-up apart (on a loaded machine the first one could finish alone).
RACER = """
import os, sys, time
import django
django.setup()
from django.core.management import call_command
from realtime.management.commands import purge_transcripts  # imported before the start
go = sys.argv[1]
open(f"{go}.{os.getpid()}", "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
call_command("purge_transcripts", "--batch-size", "100")
"""


@pytest.mark.slow  # four purge processes racing on 30,000 rows
def test_every_worker_purging_at_once_deletes_each_entry_once(database_url: str, tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": "purge-test-key",
        "DJANGO_SETTINGS_MODULE": "relay_site.settings",
    }

    def manage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return done.stdout

    manage("shell", "-c", SEED)
    assert manage("shell", "-v", "0", "-c", COUNT).strip() == "30100"
    go = tmp_path / "go"
    command = [sys.executable, "-c", RACER, str(go)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    workers = [subprocess.Popen(command, cwd=ROOT, env=env, **pipes) for _ in range(4)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("go.*"))) < 4:  # each one ready to purge
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
        time.sleep(0.02)
    go.touch()
    outputs = [worker.communicate(timeout=120) for worker in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert "Traceback" not in err
    counts = [int(re.search(r"purged (\d+) ", out).group(1)) for out, _ in outputs]
    assert sum(counts) == 30000  # each old entry deleted once, by one of them
    if database_url.startswith("postgres"):
        # Row locks: the four delete side by side. (SQLite has one write lock, and its busy
        # handler may let one purge take every batch while the others wait: there, the
        # check is that none of them failed on the lock and the count is exact.)
        assert sum(1 for c in counts if c) >= 2, f"the purges did not overlap: {counts}"
    assert manage("shell", "-v", "0", "-c", COUNT).strip() == "100"  # the recent ones stay
