"""Conversation records read back: readable lines, and JSON/CSV exports.

``ConversationEntry`` rows are written by the sessions (gathered by
realtime/records/conversation.py, written by realtime/records/entries.py with each heartbeat
of realtime/ops/presence.py); the admin (realtime/admin/sessions.py) and a user's own pages
(realtime/records/views.py) show and export them through this module. Entry text is
data, never markup: templates escape it, and CSV cells a spreadsheet would run as a formula
are quoted.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from realtime.models import ConversationEntry, RealtimeSession
from realtime.records.spreadsheets import safe_row

CSV_COLUMNS = ("session_id", "user", "seq", "at", "role", "kind", "text", "data")

SPEAKERS = {
    ("user", "typed"): "User (typed)",
    ("user", "spoken"): "User (spoken)",
    ("assistant", "answer"): "Assistant",
    ("tool", "call"): "Tool",
    ("system", "system_message"): "System",
    ("session", "ended"): "Session",
}


@dataclass(frozen=True)
class Line:
    """One entry as a person reads it."""

    seq: int
    at: datetime
    role: str
    kind: str
    speaker: str
    text: str
    compact: bool  # a tool call or the ending: one short line, not a speech bubble


def with_entries(sessions: QuerySet[RealtimeSession]) -> QuerySet[RealtimeSession]:
    """Sessions with their entries in order, user joined: two queries for any number."""
    ordered = ConversationEntry.objects.order_by("seq")
    return sessions.select_related("user").prefetch_related(Prefetch("entries", ordered))


def lines(entries: Iterable[ConversationEntry]) -> list[Line]:
    return [
        Line(
            seq=e.seq,
            at=e.at,
            role=e.role,
            kind=e.kind,
            speaker=SPEAKERS.get((e.role, e.kind), f"{e.role} ({e.kind})"),
            text=describe(e),
            compact=e.role in ("tool", "session"),
        )
        for e in entries
    ]


def describe(entry: ConversationEntry) -> str:
    """The entry's text; tool calls and the ending as one compact line."""
    data = entry.data or {}
    if (entry.role, entry.kind) == ("tool", "call"):
        parts = [entry.text, data.get("status") or "?"]
        if data.get("error"):
            parts[-1] += f" ({data['error']})"
        if data.get("duration_ms") is not None:
            parts.append(f"{data['duration_ms']} ms")
        if data.get("arguments") is not None:
            parts.append(f"arguments {_compact_json(data['arguments'])}")
        if data.get("result") is not None:
            parts.append(f"result {_compact_json(data['result'])}")
        return " · ".join(parts)
    if (entry.role, entry.kind) == ("session", "ended"):
        text = f"ended: {entry.text or 'unknown'}"
        if data.get("close_code") is not None:
            text += f" (close code {data['close_code']})"
        if data.get("ended_by"):
            text += f", by {data['ended_by']}"
        return text
    return entry.text


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


# ---- exports ------------------------------------------------------------------------------


def entry_record(entry: ConversationEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "role": entry.role,
        "kind": entry.kind,
        "text": entry.text,
        "item_id": entry.item_id,
        "data": entry.data or {},
    }


def session_record(session: RealtimeSession) -> dict[str, Any]:
    """A session and its entries (``session.entries`` prefetched: see ``with_entries``)."""
    return {
        "id": str(session.id),
        "user": session.user.get_username() if session.user else None,
        "status": session.status,
        "provider": session.provider,
        "model": session.model,
        "started_at": session.started_at.isoformat(),
        "ended_at": session.ended_at.isoformat() if session.ended_at else None,
        "close_reason": session.close_reason,
        "entries": [entry_record(e) for e in session.entries.all()],
    }


def json_response(sessions: QuerySet[RealtimeSession], filename: str) -> HttpResponse:
    body = {"sessions": [session_record(s) for s in with_entries(sessions)]}
    response = JsonResponse(body, json_dumps_params={"ensure_ascii": False, "indent": 1})
    response["Content-Disposition"] = f'attachment; filename="{filename}.json"'
    return response


def csv_rows(sessions: QuerySet[RealtimeSession]) -> Iterator[list[Any]]:
    yield list(CSV_COLUMNS)
    for session in with_entries(sessions):
        user = session.user.get_username() if session.user else ""
        for e in session.entries.all():
            data = _compact_json(e.data) if e.data else ""
            yield [session.id, user, e.seq, e.at.isoformat(), e.role, e.kind, e.text, data]


def csv_response(sessions: QuerySet[RealtimeSession], filename: str) -> StreamingHttpResponse:
    """One row per entry, streamed (a user's export may be long)."""
    writer = csv.writer(_Echo())
    rows = (writer.writerow(safe_row(row)) for row in csv_rows(sessions))
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


class _Echo:
    """A file-like object whose write returns the line (csv.writer into a stream)."""

    def write(self, value: str) -> str:
        return value
