"""A signed-in user's own conversations: a list, each one as a transcript, JSON exports.

Only the user's own sessions: anyone else's id is a 404 (not a 403, which would confirm
that the session exists), staff included; staff review conversations in the admin.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_safe

from realtime.models import RealtimeSession
from realtime.records import transcripts

PER_PAGE = 50


def _own(request: HttpRequest) -> QuerySet[RealtimeSession]:
    return RealtimeSession.objects.filter(user=request.user)


@require_safe
@login_required
def conversation_list(request: HttpRequest) -> HttpResponse:
    sessions = _own(request).annotate(entry_count=Count("entries")).order_by("-started_at")
    page = Paginator(sessions, PER_PAGE).get_page(request.GET.get("page"))
    for session in page:
        seconds = int(session.duration.total_seconds())
        session.length = f"{seconds // 60}:{seconds % 60:02d}"
    config = request.relay.config  # type: ignore[attr-defined]
    context: dict[str, Any] = {
        "page": page,
        "stored": config.transcripts_stored,
        "retention_days": config.transcript_retention_days,
    }
    return render(request, "realtime/conversations.html", context)


@require_safe
@login_required
def conversation_detail(request: HttpRequest, session_id: Any) -> HttpResponse:
    session = get_object_or_404(_own(request), pk=session_id)
    context = {
        "session": session,
        "conversation": transcripts.lines(session.entries.order_by("seq")),
    }
    return render(request, "realtime/conversation.html", context)


@require_safe
@login_required
def conversation_export(request: HttpRequest, session_id: Any) -> HttpResponse:
    get_object_or_404(_own(request), pk=session_id)
    sessions = _own(request).filter(pk=session_id)
    return transcripts.json_response(sessions, f"conversation-{session_id}")


@require_safe
@login_required
def conversations_export(request: HttpRequest) -> HttpResponse:
    """All of the user's conversations (what they can take with them)."""
    return transcripts.json_response(_own(request).order_by("started_at"), "my-conversations")
