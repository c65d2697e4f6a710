"""Conversations in the admin: the transcript on a session's page, search, exports, and the
safety rules (no deleting live rows, no writes on GET)."""

from __future__ import annotations

import csv
import html
import io
import json
import logging
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from realtime.models import RealtimeSession

from .conftest import A_CONVERSATION, add_entries, make_session

pytestmark = pytest.mark.django_db

LIST = "/admin/realtime/realtimesession/"


def page_entries(page: str) -> list[tuple[str, str, str]]:
    """(role, kind, visible text) of each transcript line, in page order."""
    found = re.findall(
        r'<li class="entry[^"]*" data-role="(\w+)" data-kind="(\w+)".*?'
        r'<span class="text">(.*?)</span>',
        page,
        flags=re.S,
    )
    return [(role, kind, html.unescape(text)) for role, kind, text in found]


def test_the_session_page_shows_the_conversation_in_order(admin_client):
    session = make_session()
    add_entries(session, *A_CONVERSATION)
    page = admin_client.get(f"{LIST}{session.pk}/change/").content.decode()
    shown = page_entries(page)
    assert [(r, k) for r, k, _ in shown] == [(r, k) for r, k, _, _ in A_CONVERSATION]
    assert shown[0][2] == "hello there"
    assert shown[2][2] == "What time is it, use get current time."
    # A tool call is one compact line: name, status, duration, and what the tool lets show.
    assert shown[3][2] == (
        'get_current_time · done · 3 ms · arguments {"timezone":"UTC"} · '
        'result {"iso":"2026-11-27T12:00:00+00:00"}'
    )
    assert shown[5][2] == "ended: client_closed (close code 1000)"
    assert "User (spoken)" in page and "Assistant" in page
    assert f"{session.pk}/conversation.json" in page and f"{session.pk}/conversation.csv" in page


def test_entry_text_is_shown_as_text_never_as_html(admin_client):
    session = make_session()
    add_entries(session, ("user", "typed", '<script>alert("x")</script><b>bold</b>', {}))
    page = admin_client.get(f"{LIST}{session.pk}/change/").content.decode()
    assert "<script>alert" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page


def test_a_live_session_page_says_entries_arrive_with_the_heartbeat(admin_client):
    session = make_session(status="live")
    page = admin_client.get(f"{LIST}{session.pk}/change/").content.decode()
    assert "Nothing recorded yet." in page
    assert "written every 10.0 s" in page


def test_the_list_searches_what_was_said_and_lists_each_session_once(admin_client):
    rainy = make_session()
    add_entries(
        rainy,
        ("user", "typed", "what is the weather in Oslo", {}),
        ("assistant", "answer", "The weather in Oslo is rainy.", {}),
        ("user", "typed", "and the weather tomorrow?", {}),
    )
    add_entries(make_session(), ("user", "typed", "tell me a joke", {}))
    page = admin_client.get(LIST, {"q": "weather"}).content.decode()
    assert "1 result" in page
    assert page.count(f'value="{rainy.pk}"') == 1  # its checkbox, once
    assert "words said in the session" in page
    assert "0 results" in admin_client.get(LIST, {"q": "umbrella"}).content.decode()


def test_one_conversation_exports_as_json_and_csv(admin_client, caplog):
    caplog.set_level(logging.INFO, logger="realtime.records")
    ann = get_user_model().objects.create_user("ann")
    session = make_session(ann)
    add_entries(session, *A_CONVERSATION, ("user", "typed", "=HYPERLINK(1)", {}))
    response = admin_client.get(f"{LIST}{session.pk}/conversation.json")
    assert response.status_code == 200
    assert f"admin exported conversation-{session.pk} as JSON" in caplog.text  # who took it
    assert "attachment" in response["Content-Disposition"]
    [exported] = json.loads(response.content)["sessions"]
    assert exported["id"] == str(session.pk) and exported["user"] == "ann"
    kinds = [(e["role"], e["kind"]) for e in exported["entries"]]
    assert kinds == [(r, k) for r, k, _, _ in A_CONVERSATION] + [("user", "typed")]
    assert exported["entries"][3]["data"]["duration_ms"] == 3
    assert [e["seq"] for e in exported["entries"]] == list(range(1, 8))

    response = admin_client.get(f"{LIST}{session.pk}/conversation.csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["session_id", "user", "seq", "at", "role", "kind", "text", "data"]
    assert [r[6] for r in rows[1:3]] == ["hello there", A_CONVERSATION[1][2]]
    assert json.loads(rows[4][7])["status"] == "done"
    # What a user typed cannot become a spreadsheet formula.
    assert rows[-1][6] == "'=HYPERLINK(1)"


def test_a_users_conversations_export_together(admin_client):
    User = get_user_model()
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")
    earlier = make_session(ann, started_at=timezone.now() - timedelta(hours=1))
    later = make_session(ann)
    add_entries(earlier, ("user", "typed", "first", {}))
    add_entries(later, ("user", "typed", "second", {}))
    add_entries(make_session(bob), ("user", "typed", "bob's", {}))
    page = admin_client.get(f"{LIST}{later.pk}/change/").content.decode()
    assert f"user/{ann.pk}/conversations.json" in page
    body = admin_client.get(f"{LIST}user/{ann.pk}/conversations.json").json()
    assert [s["entries"][0]["text"] for s in body["sessions"]] == ["first", "second"]
    text = b"".join(admin_client.get(f"{LIST}user/{ann.pk}/conversations.csv").streaming_content)
    assert b"first" in text and b"second" in text and b"bob's" not in text
    assert admin_client.get(f"{LIST}user/99999/conversations.json").status_code == 404
    assert admin_client.get(f"{LIST}user/not-a-number/conversations.csv").status_code == 404
    assert admin_client.get(f"{LIST}{later.pk}/conversation.xml").status_code == 404


def test_selected_sessions_export_as_an_admin_action(admin_client):
    one, two, three = make_session(), make_session(), make_session()
    for session, text in ((one, "one"), (two, "two"), (three, "three")):
        add_entries(session, ("user", "typed", text, {}))
    response = admin_client.post(
        LIST, {"action": "export_conversations_json", "_selected_action": [one.pk, three.pk]}
    )
    texts = {s["entries"][0]["text"] for s in json.loads(response.content)["sessions"]}
    assert texts == {"one", "three"}
    response = admin_client.post(
        LIST, {"action": "export_conversations_csv", "_selected_action": [two.pk]}
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r[6] for r in rows[1:]] == ["two"]


def test_exports_are_for_staff_with_the_view_and_export_permissions(client):
    session = make_session()
    add_entries(session, ("user", "typed", "private words", {}))
    url = f"{LIST}{session.pk}/conversation.json"
    User = get_user_model()
    User.objects.create_user("visitor", password="pw")
    client.login(username="visitor", password="pw")
    response = client.get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    staff = User.objects.create_user("clerk", password="pw", is_staff=True)
    client.login(username="clerk", password="pw")
    assert client.get(url).status_code == 403
    assert client.get(f"{LIST}{session.pk}/change/").status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="view_realtimesession"))
    assert client.get(url).status_code == 403  # viewing is not exporting (issue 25)
    staff.user_permissions.add(Permission.objects.get(codename="export_conversations"))
    response = client.get(url)
    assert response.status_code == 200 and b"private words" in response.content


def test_a_live_session_can_be_terminated_but_not_deleted(admin_client):
    live = make_session(status="live")
    closed = make_session()
    page = admin_client.get(f"{LIST}{live.pk}/change/").content.decode()
    assert f"{live.pk}/delete/" not in page
    assert admin_client.get(f"{LIST}{live.pk}/delete/").status_code == 403
    changelist = admin_client.get(LIST).content.decode()
    assert 'value="delete_selected"' not in changelist  # the bulk delete cannot tell them apart
    assert 'value="terminate_sessions"' in changelist
    assert f"{closed.pk}/delete/" in admin_client.get(f"{LIST}{closed.pk}/change/").content.decode()
    admin_client.post(f"{LIST}{closed.pk}/delete/", {"post": "yes"})
    assert list(RealtimeSession.objects.all()) == [live]


def test_viewing_the_admin_writes_nothing(admin_client):
    """The reapers mark silent rows stale, not page views: a GET of the list (with a row whose
    worker stopped heartbeating), a session page or an export issues no write."""
    silent = make_session(status="live", last_seen_at=timezone.now() - timedelta(minutes=5))
    add_entries(silent, *A_CONVERSATION)
    urls = [
        LIST,
        f"{LIST}?q=hello",
        f"{LIST}{silent.pk}/change/",
        f"{LIST}{silent.pk}/conversation.json",
        f"{LIST}{silent.pk}/conversation.csv",
    ]
    with CaptureQueriesContext(connection) as queries:
        for url in urls:
            response = admin_client.get(url)
            assert response.status_code == 200, url
            if response.streaming:
                b"".join(response.streaming_content)
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if re.match(r"\s*(INSERT|UPDATE|DELETE|REPLACE)", q["sql"], re.I)
    ]
    assert writes == []
    silent.refresh_from_db()
    assert silent.status == "live"  # shown as stale on the page, left for a reaper to mark
    assert ">stale<" in admin_client.get(LIST).content.decode()
