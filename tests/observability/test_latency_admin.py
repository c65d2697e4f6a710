"""A session's answer latency on its admin page: p50/p95 and a chart over the turns."""

from __future__ import annotations

import re
from datetime import date

import pytest

from tests.observability.test_usage_admin import session, timed

pytestmark = pytest.mark.django_db


def test_the_session_page_shows_p50_p95_and_a_chart_of_the_turns(admin_client):
    row = session(None, date(2026, 3, 1), latency=timed(300, 400, 500, 600, 2000))
    page = admin_client.get(f"/admin/realtime/realtimesession/{row.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "upstream connect: 40 ms; 5 timed answer(s)" in html
    table = html[html.index('id="latency-summary"') :]
    cells = re.findall(r"<td>([^<]*)</td>", table)[:12]
    assert cells[:4] == ["to the first reply audio", "5", "500 ms", "2000 ms"]
    assert cells[4:8] == ["to the first reply text", "5", "480 ms", "1980 ms"]
    assert cells[8:12] == ["the relay&#x27;s share of the first audio", "5", "0.3 ms", "0.3 ms"]
    chart = html[html.index('<svg class="latency-chart"') :]
    chart = chart[: chart.index("</svg>")]
    audio = re.search(r'stroke="#1f5fbf" stroke-width="1.5" points="([^"]+)"', chart)
    assert audio is not None and len(audio.group(1).split()) == 5  # one point per answer
    assert "<script" not in chart


def test_a_session_without_timed_answers_says_so(admin_client):
    row = session(None, date(2026, 3, 1))
    html = admin_client.get(f"/admin/realtime/realtimesession/{row.id}/change/").content
    assert b"upstream connect: \xe2\x80\x93; no timed answers yet" in html
