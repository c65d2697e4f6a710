"""`manage.py purge_transcripts`: delete conversation entries older than the retention."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from realtime.ops import runtime as relay_runtime
from realtime.records import retention


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = (
        "Delete conversation entries (transcripts) older than RELAY_TRANSCRIPT_RETENTION_DAYS "
        "(or --days), in batches. Safe to run from cron on every worker at once; session rows "
        "(usage) are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=positive,
            help="keep this many days (default: RELAY_TRANSCRIPT_RETENTION_DAYS; 0 there = "
            "keep forever)",
        )
        parser.add_argument(
            "--batch-size", type=positive, default=retention.BATCH, help="rows per delete"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is None:
            days = relay_runtime.current().config.transcript_retention_days
            if days == 0:
                self.stdout.write("RELAY_TRANSCRIPT_RETENTION_DAYS=0: records are kept forever")
                return
        before = retention.cutoff(days)
        try:
            deleted = retention.purge_entries(before=before, batch_size=options["batch_size"])
        except DatabaseError as exc:  # a cron mail with one line, not a traceback
            raise CommandError(f"purge failed: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(
            f"purged {deleted} conversation entries older than {days} days "
            f"(before {before:%Y-%m-%d %H:%M} UTC)"
        )
