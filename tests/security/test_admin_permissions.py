"""Issue 25, finding 7: ending sessions and taking conversations out need their own
permissions (``realtime.terminate_realtimesession``, ``realtime.export_conversations``), not
merely a staff flag or the view permission. Everything through the admin, as staff use it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from realtime.models import RealtimeSession
from tests.records.conftest import A_CONVERSATION, add_entries, make_session

pytestmark = pytest.mark.django_db

LIST = "/admin/realtime/realtimesession/"


def staff(*codenames: str) -> Client:
    user = get_user_model().objects.create_user(
        "clerk-" + "-".join(codenames), password="pw", is_staff=True
    )
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def stale_row() -> RealtimeSession:
    """A session whose worker died: terminate closes its row directly (visible in the DB)."""
    return make_session(status="stale", last_seen_at=timezone.now() - timedelta(minutes=5))


@pytest.mark.parametrize("action", ["terminate_sessions", "terminate_user_sessions"])
def test_view_only_staff_cannot_end_sessions(action, django_user_model):
    owner = django_user_model.objects.create_user("ann")
    row = make_session(owner, status="stale", last_seen_at=timezone.now() - timedelta(minutes=5))
    viewer = staff("view_realtimesession")
    changelist = viewer.get(LIST).content.decode()
    assert 'value="terminate_sessions"' not in changelist
    assert 'value="terminate_user_sessions"' not in changelist
    response = viewer.post(LIST, {"action": action, "_selected_action": [str(row.pk)]}, follow=True)
    assert "Asked" not in response.content.decode()
    row.refresh_from_db()
    assert row.status == "stale" and row.ended_by == ""


def test_staff_with_the_terminate_permission_end_sessions():
    row = stale_row()
    operator = staff("view_realtimesession", "terminate_realtimesession")
    assert 'value="terminate_sessions"' in operator.get(LIST).content.decode()
    response = operator.post(
        LIST, {"action": "terminate_sessions", "_selected_action": [str(row.pk)]}, follow=True
    )
    assert "Closed 1 stale row(s)" in response.content.decode()
    row.refresh_from_db()
    assert (row.status, row.close_reason) == ("closed", "terminated_stale")
    assert row.ended_by == "clerk-view_realtimesession-terminate_realtimesession"


def test_view_only_staff_see_conversations_but_cannot_export_them(django_user_model):
    ann = django_user_model.objects.create_user("ann")
    session = make_session(ann)
    add_entries(session, *A_CONVERSATION)
    viewer = staff("view_realtimesession")
    page = viewer.get(f"{LIST}{session.pk}/change/").content.decode()
    assert "hello there" in page  # viewing is what the view permission is for
    assert "conversation.json" not in page and "conversations.csv" not in page
    exports = [
        f"{LIST}{session.pk}/conversation.json",
        f"{LIST}{session.pk}/conversation.csv",
        f"{LIST}user/{ann.pk}/conversations.json",
        "/admin/usage/?format=csv",
    ]
    for url in exports:
        assert viewer.get(url).status_code == 403, url
    assert viewer.get("/admin/usage/").status_code == 200  # the page itself stays visible
    changelist = viewer.get(LIST).content.decode()
    assert 'value="export_conversations_json"' not in changelist
    response = viewer.post(
        LIST, {"action": "export_conversations_csv", "_selected_action": [str(session.pk)]}
    )
    assert response.get("Content-Type", "").startswith("text/html")  # no CSV came out

    exporter = staff("view_realtimesession", "export_conversations")
    assert "conversation.json" in exporter.get(f"{LIST}{session.pk}/change/").content.decode()
    for url in exports:
        assert exporter.get(url).status_code == 200, url
    response = exporter.post(
        LIST, {"action": "export_conversations_csv", "_selected_action": [str(session.pk)]}
    )
    assert b"hello there" in b"".join(response.streaming_content)
