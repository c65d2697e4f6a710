"""Token usage per user and per day in the admin (/admin/usage/)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest

from realtime.admin.usage import latency_by_day, usage_rollup
from realtime.kernel.latency import BUCKETS_MS, bucket_of
from realtime.models import RealtimeSession

pytestmark = pytest.mark.django_db


def session(user, day: date, hour: int = 12, **counters: int) -> RealtimeSession:
    started = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    return RealtimeSession.objects.create(
        user=user,
        provider="simulator",
        model="gpt-realtime",
        worker_id="test:1",
        status=RealtimeSession.Status.CLOSED,
        started_at=started,
        last_seen_at=started,
        **counters,
    )


@pytest.fixture
def usage(django_user_model):
    ann = django_user_model.objects.create_user("ann")
    bob = django_user_model.objects.create_user("bob")
    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    session(ann, d1, 1, input_tokens=100, output_tokens=50, input_audio_tokens=90, responses=2)
    session(ann, d1, 23, input_tokens=10, output_tokens=5, input_audio_tokens=10, responses=1)
    session(ann, d2, 9, input_tokens=7, output_tokens=3, responses=1)
    session(bob, d1, 12, input_tokens=1000, output_tokens=400, output_audio_tokens=300)
    session(None, d2, 12, input_tokens=1, output_tokens=1)
    return ann, bob


def test_usage_is_summed_per_user_and_per_utc_day(usage):
    rows = {(r["day"], r["user__username"]): r for r in usage_rollup()}
    ann_d1 = rows[(date(2026, 3, 1), "ann")]
    assert (ann_d1["sessions"], ann_d1["input_tokens"], ann_d1["output_tokens"]) == (2, 110, 55)
    assert ann_d1["input_audio_tokens"] == 100 and ann_d1["responses"] == 3
    assert rows[(date(2026, 3, 2), "ann")]["input_tokens"] == 7
    assert rows[(date(2026, 3, 1), "bob")]["output_audio_tokens"] == 300
    assert rows[(date(2026, 3, 2), None)]["sessions"] == 1  # sessions without a user
    assert len(rows) == 4


def test_the_date_range_filters_days(usage):
    rows = list(usage_rollup(start=date(2026, 3, 2), end=date(2026, 3, 2)))
    assert {r["user__username"] for r in rows} == {"ann", None}


def test_the_admin_page_shows_the_rollup_to_staff(usage, admin_client):
    response = admin_client.get("/admin/usage/?start=2026-03-01&end=2026-03-01")
    assert response.status_code == 200
    assert [(r["user__username"], r["input_tokens"]) for r in response.context["rows"]] == [
        ("ann", 110),
        ("bob", 1000),
    ]
    assert response.context["totals"]["output_tokens"] == 455
    assert b"Token usage per user and day" in response.content


def test_the_csv_export_has_one_line_per_user_and_day(usage, admin_client):
    response = admin_client.get("/admin/usage/?start=2026-03-01&end=2026-03-02&format=csv")
    lines = response.content.decode().strip().splitlines()
    assert lines[0].startswith("day,user,sessions,input_tokens,output_tokens")
    assert any(line.startswith("2026-03-01,ann,2,110,55,0,100,") for line in lines[1:])
    assert len(lines) == 1 + 4


def test_the_page_is_for_staff_only(usage, client, django_user_model):
    assert client.get("/admin/usage/").status_code == 302  # to the admin login
    client.force_login(django_user_model.objects.create_user("plain"))
    assert client.get("/admin/usage/").status_code == 302
    staff = django_user_model.objects.create_user("helper", is_staff=True)
    client.force_login(staff)  # staff, but without permission to view sessions
    assert client.get("/admin/usage/").status_code == 403


def test_the_csv_export_makes_usernames_inert_for_spreadsheets(admin_client, django_user_model):
    """Issue 25, finding 8: a username is user-controlled; the usage CSV neutralises it like
    the conversation CSV does (a leading quote before = + - @ tab CR)."""
    names = ["-2+3", "@SUM+1-1", "=HYPERLINK(1)", "+1", "\tx", "\rx", "plain"]
    for name in names:
        session(django_user_model.objects.create_user(name), date(2026, 3, 1), input_tokens=1)
    response = admin_client.get("/admin/usage/?start=2026-03-01&end=2026-03-01&format=csv")
    rows = list(csv.reader(io.StringIO(response.content.decode(), newline="")))[1:]
    users = sorted(row[1] for row in rows)
    assert users == sorted(["'-2+3", "'@SUM+1-1", "'=HYPERLINK(1)", "'+1", "'\tx", "'\rx", "plain"])
    assert all(row[0] == "2026-03-01" and row[3] == "1" for row in rows)


def timed(*first_audio_ms: int) -> dict:
    """A session row's latency column with these answers (text 20 ms before the audio)."""
    counts = {"first_audio": [0] * (len(BUCKETS_MS) + 1), "first_text": [0] * (len(BUCKETS_MS) + 1)}
    for ms in first_audio_ms:
        counts["first_audio"][bucket_of(ms)] += 1
        counts["first_text"][bucket_of(ms - 20)] += 1
    answers = [[ms, ms - 20, 0.3] for ms in first_audio_ms]
    return {"connect_ms": 40, "answers": answers, "counts": counts}


def test_latency_per_day_adds_up_the_sessions_answers(usage, admin_client, django_user_model):
    ann = django_user_model.objects.get(username="ann")
    d1, d2 = date(2026, 3, 1), date(2026, 3, 2)
    session(ann, d1, 8, latency=timed(*[280] * 10))
    session(None, d1, 9, latency=timed(*[900] * 9, 4000))
    session(ann, d2, 9, latency=timed(600))
    rows = {r["day"]: r for r in latency_by_day()}
    assert rows[d1]["answers"] == 20
    assert 250 <= rows[d1]["first_audio_p50"] <= 300  # half the answers came within 300 ms
    assert 800 <= rows[d1]["first_audio_p95"] <= 1000
    assert 250 <= rows[d1]["first_text_p50"] <= 300
    assert rows[d2]["answers"] == 1 and 500 <= rows[d2]["first_audio_p50"] <= 600
    assert list(rows) == [d2, d1]  # newest first; days without timed answers are not listed
    response = admin_client.get("/admin/usage/?start=2026-03-01&end=2026-03-01")
    assert [r["answers"] for r in response.context["latency_days"]] == [20]
    assert b"Answer latency per day" in response.content
