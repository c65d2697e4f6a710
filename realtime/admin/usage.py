"""Token usage rolled up per user and per day, as an admin page (/admin/usage/).

A selector (``usage_rollup``) over ``RealtimeSession`` rows and a staff-only view that renders
it inside the admin, with a date range filter and a CSV export. No model of its own: the
numbers are the session rows' counters, summed (TruncDate + Sum) in the database.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from realtime.kernel.counters import USAGE_COLUMNS
from realtime.kernel.latency import BUCKETS_MS, bucket_percentile
from realtime.records.spreadsheets import safe_row

SUMMED = USAGE_COLUMNS  # realtime.kernel.counters: the counters marked usage=True
DEFAULT_DAYS = 30


def usage_rollup(*, start: date | None = None, end: date | None = None) -> QuerySet:
    """One row per (day, user): sessions and summed counters, newest day first."""
    from realtime.models import RealtimeSession  # the lead's model; imported on use

    rows = RealtimeSession.objects.all()
    if start is not None:
        rows = rows.filter(started_at__date__gte=start)
    if end is not None:
        rows = rows.filter(started_at__date__lte=end)
    return (
        rows.annotate(day=TruncDate("started_at"))
        .values("day", "user_id", "user__username")
        .annotate(sessions=Count("id"), **{name: Sum(name) for name in SUMMED})
        .order_by("-day", "user__username")
    )


def latency_by_day(*, start: date | None = None, end: date | None = None) -> list[dict[str, Any]]:
    """Per UTC day (newest first): answers timed, and p50/p95 of the time to first audio and
    to first text (ms). Read from each session row's per-bucket counts only (the database
    extracts ``latency.counts``; the per-answer lists stay where they are), so the cost is one
    small JSON per session, whatever the number of answers; the quantiles are interpolated
    inside their bucket of ``BUCKETS_MS``, as Prometheus' ``histogram_quantile`` does."""
    from realtime.models import RealtimeSession

    rows = RealtimeSession.objects.exclude(latency={})
    if start is not None:
        rows = rows.filter(started_at__date__gte=start)
    if end is not None:
        rows = rows.filter(started_at__date__lte=end)
    width = len(BUCKETS_MS) + 1
    days: dict[date, dict[str, list[int]]] = {}
    for day, counts in rows.annotate(day=TruncDate("started_at")).values_list(
        "day", "latency__counts"
    ):
        summed = days.setdefault(day, {"first_audio": [0] * width, "first_text": [0] * width})
        for name, row in (counts or {}).items():
            if name in summed and isinstance(row, list) and len(row) == width:
                summed[name] = [a + int(b) for a, b in zip(summed[name], row, strict=True)]
    return [
        {
            "day": day,
            "answers": max(sum(summed["first_audio"]), sum(summed["first_text"])),
            **{
                f"{name}_p{q}": bucket_percentile(summed[name], q / 100)
                for name in ("first_audio", "first_text")
                for q in (50, 95)
            },
        }
        for day, summed in sorted(days.items(), reverse=True)
    ]


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def usage_view(request: HttpRequest) -> HttpResponse:
    """Staff with view permission on sessions only (wrapped in admin_view in the URLconf); the
    CSV also needs ``realtime.export_conversations``."""
    if not request.user.has_perm("realtime.view_realtimesession"):
        raise PermissionDenied
    today = timezone.localdate()
    start = _date(request.GET.get("start")) or today - timedelta(days=DEFAULT_DAYS - 1)
    end = _date(request.GET.get("end")) or today
    rows = list(usage_rollup(start=start, end=end))
    if request.GET.get("format") == "csv":
        if not request.user.has_perm("realtime.export_conversations"):
            raise PermissionDenied  # viewing is not exporting (issue 25)
        return _csv(rows, start, end)
    totals = {name: sum(row[name] or 0 for row in rows) for name in ("sessions", *SUMMED)}
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Token usage per user and day",
        "rows": rows,
        "totals": totals,
        "latency_days": latency_by_day(start=start, end=end),
        "latency_buckets": ", ".join(str(b) for b in BUCKETS_MS),
        "start": start,
        "end": end,
        "may_export": request.user.has_perm("realtime.export_conversations"),
        "presets": [
            ("Today", today, today),
            ("Last 7 days", today - timedelta(days=6), today),
            ("Last 30 days", today - timedelta(days=29), today),
            ("This month", today.replace(day=1), today),
        ],
    }
    return TemplateResponse(request, "admin/realtime/usage_summary.html", context)


def _csv(rows: list[dict[str, Any]], start: date, end: date) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="usage-{start}-{end}.csv"'
    writer = csv.writer(response)
    writer.writerow(["day", "user", "sessions", *SUMMED])
    for row in rows:
        user = row["user__username"] or ""
        cells = [row["day"], user, row["sessions"], *(row[n] or 0 for n in SUMMED)]
        writer.writerow(safe_row(cells))  # usernames are user-controlled (issue 25)
    return response
