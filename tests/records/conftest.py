"""Conversation records written directly (as a session's Presence would) for page tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from realtime.models import ConversationEntry, RealtimeSession


def make_session(user: Any = None, *, status: str = "closed", **fields: Any) -> RealtimeSession:
    now = timezone.now()
    values: dict[str, Any] = {
        "user": user,
        "provider": "simulator",
        "model": "gpt-realtime",
        "worker_id": "test:1",
        "status": status,
        "started_at": now,
        "last_seen_at": now,
    }
    if status == "closed":
        values.update(ended_at=now, close_code=1000, close_reason="client_closed")
    return RealtimeSession.objects.create(**(values | fields))


def add_entries(
    session: RealtimeSession, *rows: tuple[str, str, str, dict], at: datetime | None = None
) -> list[ConversationEntry]:
    """rows: (role, kind, text, data), numbered in order, one second apart."""
    start = at or timezone.now()
    first = session.entries.count() + 1
    return ConversationEntry.objects.bulk_create(
        ConversationEntry(
            session=session,
            seq=first + i,
            at=start + timedelta(seconds=i),
            role=role,
            kind=kind,
            text=text,
            data=data,
        )
        for i, (role, kind, text, data) in enumerate(rows)
    )


TOOL_DONE = {
    "status": "done",
    "error": None,
    "duration_ms": 3,
    "arguments": {"timezone": "UTC"},
    "result": {"iso": "2026-11-27T12:00:00+00:00"},
}

A_CONVERSATION = (
    ("user", "typed", "hello there", {}),
    ("assistant", "answer", "You said: hello there. This is the simulator speaking.", {}),
    ("user", "spoken", "What time is it, use get current time.", {}),
    ("tool", "call", "get_current_time", TOOL_DONE),
    ("assistant", "answer", "The get_current_time function returned 12:00.", {}),
    ("session", "ended", "client_closed", {"close_code": 1000, "ended_by": ""}),
)


def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of its own (127.0.0.1:5432, trust auth), dropped afterwards."""
    try:
        import psycopg

        admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable: {exc}")
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    name = f"relay_records_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for ``manage.py`` subprocesses: SQLite, then PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    else:
        yield from postgres_url()
