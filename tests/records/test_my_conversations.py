"""A signed-in user's own conversations (/conversations/): theirs only, never anyone else's."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth import get_user_model

from .conftest import A_CONVERSATION, add_entries, make_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def ann_and_bob(client):
    User = get_user_model()
    ann = User.objects.create_user("ann", password="pw")
    bob = User.objects.create_user("bob", password="pw")
    mine = make_session(ann)
    add_entries(mine, *A_CONVERSATION)
    theirs = make_session(bob)
    add_entries(theirs, ("user", "typed", "bob's secret", {}))
    client.login(username="ann", password="pw")
    return mine, theirs


def test_the_list_shows_only_my_sessions(client, ann_and_bob):
    mine, theirs = ann_and_bob
    page = client.get("/conversations/").content.decode()
    assert f"/conversations/{mine.pk}" in page and f"/conversations/{theirs.pk}" not in page
    assert "<td>6</td>" in page  # its number of entries
    assert "no audio is kept" in page and "for 30 days" in page


def test_my_conversation_reads_in_order(client, ann_and_bob):
    mine, _ = ann_and_bob
    page = client.get(f"/conversations/{mine.pk}").content.decode()
    texts = [html.unescape(t) for t in re.findall(r'<span class="text">(.*?)</span>', page)]
    assert texts[0] == "hello there" and texts[2] == "What time is it, use get current time."
    assert texts[3].startswith("get_current_time · done · 3 ms")
    body = client.get(f"/conversations/{mine.pk}.json").json()
    assert [e["text"] for e in body["sessions"][0]["entries"]][:2] == [
        "hello there",
        A_CONVERSATION[1][2],
    ]
    everything = client.get("/conversations/all.json").json()
    assert [s["id"] for s in everything["sessions"]] == [str(mine.pk)]


def test_someone_elses_conversation_is_not_found(client, ann_and_bob):
    _, theirs = ann_and_bob
    for url in (f"/conversations/{theirs.pk}", f"/conversations/{theirs.pk}.json"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"bob's secret" not in response.content
    assert b"bob's secret" not in client.get("/conversations/all.json").content


def test_staff_see_only_their_own_here_too(client, ann_and_bob):
    _, theirs = ann_and_bob
    get_user_model().objects.create_superuser("root", "r@x.io", "pw")
    client.login(username="root", password="pw")
    assert client.get(f"/conversations/{theirs.pk}").status_code == 404


def test_logging_in_is_required(client):
    for url in ("/conversations/", "/conversations/all.json"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=/conversations/")


def test_the_demo_page_links_to_my_conversations_when_signed_in(client, ann_and_bob):
    assert 'href="/conversations/"' in client.get("/").content.decode()
    client.logout()
    assert 'href="/conversations/"' not in client.get("/").content.decode()
