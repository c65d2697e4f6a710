"""How long conversation records are kept: ``purge_entries`` deletes the old ones.

Run by ``manage.py purge_transcripts`` (cron, on every worker at once if that is simpler to
deploy). Each batch is a short statement of its own, so live sessions writing their entries
never wait long; several purges running at once only share the work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from realtime.models import ConversationEntry

BATCH = 1000


def cutoff(days: int, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=days)


def purge_entries(*, before: datetime, batch_size: int = BATCH) -> int:
    """Delete every entry written before ``before``, batch by batch; return how many this call
    deleted (0 when another process got there first: deleting is idempotent)."""
    old = ConversationEntry.objects.filter(at__lt=before).order_by()
    deleted = 0
    while True:
        taken, gone = _delete_batch(old, batch_size)
        deleted += gone
        if not taken:
            return deleted


def _delete_batch(old: QuerySet[ConversationEntry], size: int) -> tuple[int, int]:
    """(rows selected, rows deleted). PostgreSQL: rows another purge holds are skipped (no
    waiting, no deadlock between purges); SQLite serialises writers by itself."""
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            locked = old.select_for_update(skip_locked=True)
            ids = list(locked.values_list("pk", flat=True)[:size])
            return len(ids), _delete(ids)
    ids = list(old.values_list("pk", flat=True)[:size])
    return len(ids), _delete(ids)


def _delete(ids: list[int]) -> int:
    if not ids:
        return 0
    count, _ = ConversationEntry.objects.filter(pk__in=ids).delete()
    return count
