"""Conversation records written directly (as a session's Presence would) for page tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

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
