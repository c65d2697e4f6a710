"""The conversation part of the sessions admin: the transcript on a session's page, exports
(per session, per user, selected sessions; JSON and CSV), and no deleting of live rows.

A mixin for ``RealtimeSessionAdmin`` (realtime/admin/sessions.py). Everything here only reads: a
GET of any page or export writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse

from realtime.models import RealtimeSession
from realtime.ops import runtime as relay_runtime
from realtime.records import transcripts

log = logging.getLogger("realtime.records")

EXPORTS = {"json": transcripts.json_response, "csv": transcripts.csv_response}
ACTIONS = ("export_conversations_json", "export_conversations_csv")
EXPORT_PERMISSION = "realtime.export_conversations"  # not implied by view (issue 25)


def may_export(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(EXPORT_PERMISSION))


class ConversationAdminMixin(admin.ModelAdmin):
    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A live session is ended with terminate; deleting its row would only hide it.
        if obj is not None and obj.is_open:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # The bulk delete cannot tell live rows from closed ones: not offered.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_urls(self) -> list[URLPattern]:
        export = self.admin_site.admin_view(self.export_view)
        return [
            path("<uuid:pk>/conversation.<str:fmt>", export, name="realtime_conversation_export"),
            path(
                "user/<str:user_pk>/conversations.<str:fmt>",
                export,
                name="realtime_user_conversations_export",
            ),
            *super().get_urls(),
        ]

    def export_view(
        self, request: HttpRequest, fmt: str, pk: Any = None, user_pk: str | None = None
    ) -> HttpResponse:
        """One session's conversation, or every conversation of one user."""
        if not (self.has_view_permission(request) and may_export(request)):
            raise PermissionDenied
        if fmt not in EXPORTS:
            raise Http404("unknown export format")
        try:
            if pk is not None:
                sessions = RealtimeSession.objects.filter(pk=pk)
                name = f"conversation-{pk}"
            else:
                sessions = RealtimeSession.objects.filter(user__pk=user_pk).order_by("started_at")
                name = f"conversations-user-{user_pk}"
            found = sessions.exists()
        except (ValueError, ValidationError):  # a user id of the wrong type
            found = False
        if not found:
            raise Http404("no such session, or no session of this user")
        _audit(request, name, fmt)
        return EXPORTS[fmt](sessions, name)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> Any:
        session = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if session is not None:
            context.update(conversation_context(session, exports=may_export(request)))
        return super().change_view(request, object_id, form_url, extra_context=context)

    @admin.action(description="Export the selected conversations (JSON)", permissions=["export"])
    def export_conversations_json(self, request: HttpRequest, queryset: QuerySet) -> Any:
        _audit(request, f"{queryset.count()} selected conversation(s)", "json")
        return transcripts.json_response(queryset.order_by("started_at"), "conversations")

    @admin.action(description="Export the selected conversations (CSV)", permissions=["export"])
    def export_conversations_csv(self, request: HttpRequest, queryset: QuerySet) -> Any:
        _audit(request, f"{queryset.count()} selected conversation(s)", "csv")
        return transcripts.csv_response(queryset.order_by("started_at"), "conversations")

    def has_export_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request) and may_export(request)


def _audit(request: HttpRequest, what: str, fmt: str) -> None:
    """Who took conversations out of the relay: a log line (a GET writes nothing)."""
    log.info("%s exported %s as %s", request.user.get_username(), what, fmt.upper())


def conversation_context(session: RealtimeSession, *, exports: bool = True) -> dict[str, Any]:
    """What templates/admin/realtime/realtimesession/change_form.html shows (the export links
    only to staff who may export)."""
    config = relay_runtime.current().config
    context: dict[str, Any] = {
        "conversation": transcripts.lines(session.entries.order_by("seq")),
        "conversation_stored": config.transcripts_stored,
        "heartbeat_seconds": config.heartbeat_seconds,
        "exports": [
            (fmt, reverse("admin:realtime_conversation_export", args=[session.pk, fmt]))
            for fmt in EXPORTS
        ]
        if exports
        else [],
    }
    if exports and session.user_id is not None:
        context["user_exports"] = [
            (
                fmt,
                reverse(
                    "admin:realtime_user_conversations_export", args=[str(session.user_id), fmt]
                ),
            )
            for fmt in EXPORTS
        ]
    return context
