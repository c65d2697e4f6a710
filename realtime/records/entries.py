"""Conversation entries into the database: made storable, written in one insert (with the
heartbeat and at close), and an entry the database refuses dropped alone."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DataError, IntegrityError, transaction

from realtime.kernel import text as textrules
from realtime.models import ConversationEntry
from realtime.records.conversation import Entry

log = logging.getLogger("realtime.records.entries")


def save_entries(*, session_id: Any, entries: list[Entry]) -> int:
    """Write gathered conversation entries in one insert (heartbeat and close); returns how
    many the database refused. Each entry is made storable first (``stored_entry``); should
    the database still refuse the insert for what an entry holds, the entries are written one
    by one and only the refused ones are dropped (logged, and counted by the caller). A
    database that is unavailable fails the whole write (``DatabaseError``)."""
    if not entries:
        return 0
    rows = [stored_entry(session_id, entry) for entry in entries]
    try:
        with transaction.atomic():  # a savepoint inside the batch's transaction
            ConversationEntry.objects.bulk_create(rows)
        return 0
    except REJECTED_ENTRY:
        pass
    dropped = 0
    for row in rows:
        try:
            with transaction.atomic():
                ConversationEntry.objects.bulk_create([row])
        except REJECTED_ENTRY as exc:
            dropped += 1
            log.warning(
                "session %s: conversation entry %d (%s %s) refused by the database: %s",
                session_id,
                row.seq,
                row.role,
                row.kind,
                type(exc).__name__,
            )
    return dropped


# What the database (or its driver) raises for an entry's content rather than for its own
# state: PostgreSQL's DataError for NUL in text or jsonb; a driver's ValueError (including
# UnicodeEncodeError for a lone surrogate); IntegrityError (e.g. a duplicate seq).
REJECTED_ENTRY = (DataError, IntegrityError, ValueError)


def stored_entry(session_id: Any, entry: Entry) -> ConversationEntry:
    """The row for an entry, its text made storable on every database (realtime/kernel/text.py:
    a lone surrogate or NUL becomes U+FFFD; PostgreSQL refuses NUL in ``text`` and ``jsonb``,
    and no database takes a surrogate): what the upstream said is recorded whatever it holds."""
    try:
        data = textrules.clean_json(entry.data)
    except RecursionError:
        data = {"unrecorded": "nested too deeply"}
    return ConversationEntry(
        session_id=session_id,
        seq=entry.seq,
        at=entry.at,
        role=textrules.clean(entry.role),
        kind=textrules.clean(entry.kind),
        text=textrules.clean(entry.text),
        item_id=textrules.clean(entry.item_id[:128]),
        data=data,
    )


def last_entry_seq(*, session_id: Any) -> int:
    """The last entry a session's earlier connections wrote (0: none): a resumed session's
    record goes on after it."""
    from django.db.models import Max

    last = ConversationEntry.objects.filter(session_id=session_id).aggregate(m=Max("seq"))["m"]
    return int(last or 0)
