"""Issue 25, finding 4: one entry can no longer lose a conversation batch.

Before: on PostgreSQL, any text holding NUL made the database refuse the session's whole
insert (14 of 16 entries lost, the abusive ones included); a lone surrogate raised out of
the write on every database (and killed the session's presence). Now entries are made
storable before the insert, and should the database still refuse one, the others are
written one by one and the refused ones counted (``relay_conversation_entries_dropped_total``).

Each case runs in a ``manage.py shell`` of its own, on SQLite and on PostgreSQL, through the
same ``Presence`` write a live session's heartbeat uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # `manage.py shell` processes on SQLite and PostgreSQL

SCRIPT = r"""
import asyncio, json, uuid
from prometheus_client import REGISTRY
from realtime.ops import presence as registry
from realtime.kernel.config import load_config
from realtime.records import entries
from realtime.records.conversation import Conversation
from realtime.kernel.counters import SessionCounters
from realtime.models import ConversationEntry, RealtimeSession
from realtime.ops.runtime import Runtime

if {raw}:  # as if nothing made the entries storable: the database's refusal is the last guard
    entries.stored_entry = lambda session_id, e: ConversationEntry(
        session_id=session_id, seq=e.seq, at=e.at, role=e.role, kind=e.kind, text=e.text,
        item_id=e.item_id, data=e.data,
    )
session_id = uuid.uuid4()
RealtimeSession.objects.create(id=session_id, provider="simulator", model="m", worker_id="t:1")
conversation = Conversation(enabled=True)
for n in range(16):
    if n == 4:
        conversation.add("assistant", "answer", "say \x00 now")  # NUL in text
    elif n == 8:
        conversation.add("tool", "call", "echo", arguments={{"text": "a\x00b"}})  # NUL in jsonb
    elif n == 12:
        conversation.add("user", "spoken", "lone \udfff")  # no UTF-8 form
    else:
        conversation.add("user", "typed", f"entry {{n}}")
runtime = Runtime(load_config({{}}).replace(reaper_enabled=False))
presence = registry.Presence(
    session_id, SessionCounters(), runtime.presence_writes, 10, conversation
)
asyncio.run(presence._save_entries())
rows = ConversationEntry.objects.filter(session_id=session_id).order_by("seq")
dropped = {{
    reason: REGISTRY.get_sample_value(
        "relay_conversation_entries_dropped_total", {{"reason": reason}}
    )
    for reason in ("rejected", "unavailable")
}}
print(json.dumps({{"rows": [[r.seq, r.text, r.data] for r in rows], "dropped": dropped}}))
"""


def run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_nul_and_lone_surrogates_no_longer_lose_the_batch(database_url: str):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "DJANGO_SECRET_KEY": "records-test-key",
    }

    # The entries are made storable: all 16 written, each bad character shown as U+FFFD.
    out = json.loads(run(env, "shell", "-v", "0", "-c", SCRIPT.format(raw=False)))
    texts = {seq: text for seq, text, _ in out["rows"]}
    assert sorted(texts) == list(range(1, 17))
    assert (texts[5], texts[13]) == ("say \ufffd now", "lone \ufffd")
    assert out["rows"][8][2]["arguments"] == {"text": "a\ufffdb"}
    assert out["dropped"] == {"rejected": None, "unavailable": None}

    # Whatever the database still refuses costs that entry only, and is counted.
    out = json.loads(run(env, "shell", "-v", "0", "-c", SCRIPT.format(raw=True)))
    written = [seq for seq, _, _ in out["rows"]]
    refused = [13] if database_url.startswith("sqlite") else [5, 9, 13]  # SQLite keeps NUL
    assert written == [seq for seq in range(1, 17) if seq not in refused]
    assert out["dropped"] == {"rejected": len(refused), "unavailable": None}
