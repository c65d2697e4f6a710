"""Admin of live sessions: every session on every worker, with terminate, and what was said
in each (realtime/admin/conversations.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from realtime.admin.conversations import ACTIONS as CONVERSATION_ACTIONS
from realtime.admin.conversations import ConversationAdminMixin
from realtime.kernel import counters
from realtime.kernel.latency import percentile
from realtime.models import Note, RealtimeSession
from realtime.ops import control, reaper
from realtime.ops import runtime as relay_runtime

TERMINATE_PERMISSION = "realtime.terminate_realtimesession"

WHY_ENDED = {
    "max_age": "renewed: RELAY_UPSTREAM_MAX_SECONDS reached",
    "upstream_closed": "recovered: the service closed it",
    "upstream_session_expired": "recovered: the service's time limit",
    "upstream_stalled": "recovered: the service stopped answering",
}


def _stale_cutoff() -> Any:
    beat = relay_runtime.current().config.heartbeat_seconds
    return timezone.now() - timedelta(seconds=beat * reaper.STALE_AFTER_BEATS)


def _format_ms(ms: int) -> str:
    seconds = ms // 1000
    return f"{seconds // 60}:{seconds % 60:02d}"


def latency_summary(latency: dict[str, Any]) -> str:
    """The Latency fieldset: the upstream connect, p50/p95 per figure, an inline SVG chart."""
    connect = latency.get("connect_ms")
    kept = latency.get("answers") or []
    answers = [row for row in kept if isinstance(row, list) and len(row) == 3]
    head = format_html(
        "upstream connect: {}", f"{connect} ms" if isinstance(connect, int | float) else "–"
    )
    if not answers:
        return format_html("{}; no timed answers yet", head)
    columns = {name: [row[i] for row in answers if isinstance(row[i], int | float)]
               for i, name in enumerate(LATENCY_FIGURES)}  # fmt: skip
    cells = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (label, len(values), _ms(percentile(values, 0.5)), _ms(percentile(values, 0.95)))
            for label, values in zip(LATENCY_FIGURES.values(), columns.values(), strict=True)
        ),
    )
    return format_html(
        '{}; {} timed answer(s)<table id="latency-summary" style="margin-top:.5em"><thead><tr>'
        "<th>from the end of the user's turn</th><th>answers</th><th>p50</th><th>p95</th>"
        "</tr></thead><tbody>{}</tbody></table>{}",
        head,
        len(answers),
        cells,
        latency_chart(answers),
    )


LATENCY_FIGURES = {
    "first_audio": "to the first reply audio",
    "first_text": "to the first reply text",
    "relay": "the relay's share of the first audio",
}


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:g} ms"


def latency_chart(answers: list[list[Any]], width: int = 480, height: int = 120) -> str:
    """Time to first audio (blue) and first text (grey) per answer, as an inline SVG (no
    script): one point per answer, oldest left; the scale's top is the largest figure."""
    values = [v for row in answers for v in row[:2] if isinstance(v, int | float)]
    top = max(values, default=0) or 1
    step = width / max(1, len(answers) - 1)

    def line(index: int, colour: str) -> str:
        points = " ".join(
            f"{i * step:.1f},{height - row[index] / top * height:.1f}"
            for i, row in enumerate(answers)
            if isinstance(row[index], int | float)
        )
        return format_html(
            '<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>', colour, points
        )

    return format_html(
        '<svg class="latency-chart" role="img" width="{}" height="{}" viewBox="-4 -14 {} {}" '
        'style="display:block;margin-top:.5em"><title>time to first audio and text per answer'
        '</title><text x="0" y="-4" font-size="10">{} ms</text>'
        '<line x1="0" y1="{}" x2="{}" y2="{}" stroke="#ccc"/>{}{}</svg>',
        width + 8,
        height + 18,
        width + 8,
        height + 18,
        f"{top:g}",
        height,
        width,
        height,
        line(1, "#999"),
        line(0, "#1f5fbf"),
    )


@admin.register(RealtimeSession)
class RealtimeSessionAdmin(ConversationAdminMixin, admin.ModelAdmin):
    list_display = (
        "short_id",
        "status_badge",
        "user",
        "client_display",
        "worker_id",
        "provider",
        "duration_display",
        "last_seen_ago",
        "audio_in",
        "audio_out",
        "responses",
        "barge_ins",
        "tokens",
        "close_reason",
    )
    list_filter = ("status", "provider", "worker_id", "started_at", "close_reason")
    # entries__text: what was said. One session can match through many entries; the
    # changelist then filters with an Exists subquery, so each session is listed once.
    search_fields = ("id", "user__username", "client_addr", "worker_id", "origin", "entries__text")
    search_help_text = "Search by id, user, address, worker, origin, or words said in the session."
    date_hierarchy = "started_at"
    actions = ["terminate_sessions", "terminate_user_sessions", *CONVERSATION_ACTIONS]
    list_per_page = 50
    readonly_fields = [
        *(f.name for f in RealtimeSession._meta.fields if f.name not in ("upstreams", "latency")),
        "upstream_sessions",
        "answer_latency",
    ]
    fieldsets = (
        (None, {"fields": ("id", "status", "user", "provider", "model")}),
        ("Client", {"fields": ("client_addr", "origin", "user_agent")}),
        ("Worker", {"fields": ("worker_id", "channel_name")}),
        (
            "Timeline",
            {
                "fields": (
                    "started_at",
                    "ready_at",
                    "last_seen_at",
                    "ended_at",
                    "close_code",
                    "close_reason",
                    "ended_by",
                )
            },
        ),
        ("Upstream", {"fields": ("upstream_sessions",)}),
        ("Latency", {"fields": ("answer_latency",)}),
        ("Activity", {"fields": [c.column for c in counters.STORED]}),
    )

    # Counters are written by the consumers only.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        # Read-only: the workers' reapers mark silent rows stale; the count here leaves out
        # rows not heard from within the stale window already.
        live = RealtimeSession.objects.attached().heard_since(_stale_cutoff())
        detached = RealtimeSession.objects.filter(status=RealtimeSession.Status.DETACHED)
        extra_context = {
            **(extra_context or {}),
            "title": (
                f"Realtime sessions — {live.count()} live on "
                f"{live.values('worker_id').distinct().count()} worker(s), "
                f"{detached.count()} detached"
            ),
        }
        return super().changelist_view(request, extra_context=extra_context)

    @admin.display(description="id", ordering="id")
    def short_id(self, obj: RealtimeSession) -> str:
        return str(obj.id)[:8]

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: RealtimeSession) -> str:
        colours = {
            "live": "#0a7d28",
            "connecting": "#a66a00",
            "stale": "#b3261e",
            "detached": "#5b4bb7",
        }
        status = obj.status
        if obj.status in obj.ATTACHED_STATUSES and obj.last_seen_at < _stale_cutoff():
            status = "stale"  # its worker stopped heartbeating; a reaper will mark the row
        return format_html(
            '<strong style="color:{}">{}</strong>', colours.get(status, "#555"), status
        )

    @admin.display(description="duration", ordering="started_at")
    def duration_display(self, obj: RealtimeSession) -> str:
        return _format_ms(int(obj.duration.total_seconds() * 1000))

    @admin.display(description="last seen", ordering="last_seen_at")
    def last_seen_ago(self, obj: RealtimeSession) -> str:
        return f"{int((timezone.now() - obj.last_seen_at).total_seconds())} s ago"

    @admin.display(description="audio in", ordering="audio_ms_in")
    def audio_in(self, obj: RealtimeSession) -> str:
        return _format_ms(obj.audio_ms_in)

    @admin.display(description="audio out", ordering="audio_ms_out")
    def audio_out(self, obj: RealtimeSession) -> str:
        return _format_ms(obj.audio_ms_out)

    @admin.display(description="upstream sessions")
    def upstream_sessions(self, obj: RealtimeSession) -> str:
        """How many upstream sessions served the conversation, and why each ended (renewal
        and recovery: realtime/session/renewal.py)."""
        spans = obj.upstreams or []
        if not spans:
            ended = f", ended: {obj.close_reason}" if obj.close_reason else ""
            return f"1 (never renewed{ended})"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    span.get("n"),
                    span.get("id") or "—",
                    span.get("started_at") or "—",
                    span.get("ended_at") or "—",
                    WHY_ENDED.get(span.get("ended") or "", span.get("ended") or "open"),
                )
                for span in spans
            ),
        )
        return format_html(
            "{} upstream sessions ({} renewed on the timer, {} recovered)"
            '<table style="margin-top:.5em"><thead><tr><th>#</th><th>upstream id</th>'
            "<th>started</th><th>ended</th><th>why it ended</th></tr></thead><tbody>{}</tbody>"
            "</table>",
            len(spans),
            obj.upstream_renewals,
            obj.upstream_recoveries,
            rows,
        )

    @admin.display(description="answer latency")
    def answer_latency(self, obj: RealtimeSession) -> str:
        """p50/p95 of the session's answers (realtime/session/latency.py) and a chart of
        each answer's time to first audio and text, oldest first."""
        return latency_summary(obj.latency or {})

    @admin.display(description="tokens in/out")
    def tokens(self, obj: RealtimeSession) -> str:
        return f"{obj.input_tokens}/{obj.output_tokens}"

    @admin.display(description="client", ordering="origin")
    def client_display(self, obj: RealtimeSession) -> str:
        """Browser or phone; for a call, the caller as the row keeps it (masked by default:
        docs/phone.md)."""
        if obj.origin.startswith("phone:"):
            return f"phone {obj.client_addr}"
        return "browser"

    @admin.action(description="Terminate selected sessions", permissions=["terminate"])
    def terminate_sessions(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._terminate(request, list(queryset))

    @admin.action(
        description="Terminate all sessions of these sessions' users", permissions=["terminate"]
    )
    def terminate_user_sessions(self, request: HttpRequest, queryset: QuerySet) -> None:
        users = get_user_model().objects.filter(pk__in=queryset.exclude(user=None).values("user"))
        if not users.exists():
            self.message_user(request, "None of these sessions has a user.", messages.WARNING)
            return
        self._terminate(request, list(RealtimeSession.objects.live().of_users(users)))

    def has_terminate_permission(self, request: HttpRequest) -> bool:
        # A permission, not the staff flag: view-only staff cannot end sessions (issue 25).
        return request.user.has_perm(TERMINATE_PERMISSION)

    def _terminate(self, request: HttpRequest, sessions: list[RealtimeSession]) -> None:
        open_sessions = [s for s in sessions if s.is_open or s.status == "stale"]
        try:
            asked = control.terminate_sessions(open_sessions, by=request.user.get_username())
        except control.ControlUnavailable as exc:  # fail closed, and say so
            text = (
                "The channel layer (Redis) did not answer: no live session was asked to end; "
                "try again once it answers."
            )
            if exc.closed_stale:
                text += f" Closed {exc.closed_stale} stale row(s) whose worker is gone."
            self.message_user(request, text, messages.ERROR)
            return
        cleared = len(open_sessions) - asked
        text = f"Asked {asked} live session(s) to end."
        if cleared:
            text += f" Closed {cleared} stale row(s) whose worker is gone, or detached ones."
        skipped = len(sessions) - len(open_sessions)
        if skipped:
            text += f" Skipped {skipped} already closed."
        self.message_user(request, text, messages.SUCCESS)


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    """Notes kept through the example tools: read-only (written by the users' sessions)."""

    list_display = ("user", "created_at", "__str__")
    list_filter = ("user",)
    search_fields = ("user__username",)
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    readonly_fields = ("user", "text", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


from realtime.admin import budgets as budget_admin  # noqa: E402, F401 (budgets: overrides and what is left)
