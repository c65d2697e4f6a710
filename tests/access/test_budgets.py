"""Per-user budgets: connects per minute, session-seconds and tokens per day, refused before any
upstream work with a code, a close code and when the budget resets; overridable by staff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client as HttpClient
from django.utils import timezone

from realtime.guards.budgets import usage_today
from realtime.kernel.config import load_config
from realtime.models import RealtimeSession, UserBudget
from tests.relay.conftest import Client, configure, use_config

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def paid(simulator):
    return use_config(
        load_config({"OPENAI_API_KEY": "sk-test-paid", "OPENAI_ENDPOINT": simulator.base_url})
    )


@pytest.fixture
async def ann():
    return await sync_to_async(get_user_model().objects.create_user)("ann", password="pw")


def spent(user, *, seconds: int = 0, tokens: int = 0, started: datetime | None = None) -> None:
    """A closed session row of ``user`` today (as any worker would have written it)."""
    end = timezone.now()
    start = started or end - timedelta(seconds=seconds)
    RealtimeSession.objects.create(
        user=user, provider="openai", model="m", worker_id="w", status="closed",
        started_at=start, ended_at=end, last_seen_at=end, input_tokens=tokens,
    )  # fmt: skip


async def session(user) -> Client:
    client = Client(user=user)
    await client.connect(greeting=False)
    return client


async def refusal(user) -> tuple[dict, int]:
    client = Client(user=user)
    await client.connect(greeting=False)
    error = await client.until(type="error")
    await client.until_closed()
    return error, client.close_code


async def test_a_paid_upstream_limits_connects_per_minute_by_default(paid):
    assert paid.connects_per_minute == 20
    assert load_config({}).connects_per_minute == 0  # the simulator costs nothing


async def test_reconnecting_too_often_is_refused_before_any_upstream_session(paid, ann, simulator):
    configure(max_connects_per_minute=3)
    for _ in range(3):
        client = await session(ann)
        await client.until(action="connected")
        await client.ws.disconnect()
    error, code = await refusal(ann)
    assert (error["code"], code) == ("too_many_connects", 4006)
    assert "More than 3 connects in a minute; try again in" in error["message"]
    assert len(simulator.connections) == 3  # the fourth never reached the paid upstream
    bob = await sync_to_async(get_user_model().objects.create_user)("bob", password="pw")
    other = await session(bob)  # another user is not affected
    await other.until(action="connected")
    await other.ws.disconnect()


async def test_anonymous_clients_are_counted_per_address(paid, simulator):
    configure(max_connects_per_minute=2, allow_anonymous=True)
    for _ in range(2):
        client = await session(None)
        await client.until(action="connected")
        await client.ws.disconnect()
    error, code = await refusal(None)
    assert (error["code"], code) == ("too_many_connects", 4006)


async def test_a_used_up_daily_seconds_budget_is_refused_with_when_it_resets(paid, ann, simulator):
    configure(user_daily_seconds=600)
    await sync_to_async(spent)(ann, seconds=601)
    error, code = await refusal(ann)
    assert (error["code"], code) == ("budget_exhausted", 4007)
    assert "Your daily budget of 600 session-seconds is used up" in error["message"]
    assert "resets at 00:00 UTC (in " in error["message"]
    assert simulator.connections == []
    rows = await sync_to_async(RealtimeSession.objects.count)()
    assert rows == 1  # the spent one: a refused connect leaves no registry row


async def test_a_used_up_daily_token_budget_is_refused(paid, ann):
    configure(user_daily_tokens=1000)
    await sync_to_async(spent)(ann, seconds=5, tokens=1000)
    error, code = await refusal(ann)
    assert (error["code"], code) == ("budget_exhausted", 4007)
    assert "1000 tokens" in error["message"]


async def test_session_info_tells_what_is_left_today(paid, ann):
    configure(user_daily_seconds=600, user_daily_tokens=5000)
    await sync_to_async(spent)(ann, seconds=100, tokens=1200)
    client = await session(ann)
    info = await client.until(action="session_info")
    budget = info["budget"]
    assert 495 <= budget["seconds_left"] <= 500 and budget["tokens_left"] == 3800
    assert budget["connects_per_minute"] == 20
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    assert budget["resets_at"] == tomorrow
    await client.ws.disconnect()


async def test_a_session_ends_when_the_daily_budget_runs_out_during_it(paid, ann):
    configure(user_daily_seconds=2, heartbeat_seconds=0.2)
    client = await session(ann)
    await client.until(action="connected")
    error = await client.until(type="error", timeout=10)
    assert error["code"] == "budget_exhausted"
    await client.until_closed()
    assert client.close_code == 4007
    row = await sync_to_async(RealtimeSession.objects.get)()
    assert row.close_reason == "budget_exhausted"
    assert 2 <= (row.ended_at - row.started_at).total_seconds() < 4


async def test_a_staff_override_lifts_or_sets_one_user_s_budget(paid, ann):
    configure(user_daily_seconds=600, max_connects_per_minute=1)
    await sync_to_async(spent)(ann, seconds=601)
    await sync_to_async(UserBudget.objects.create)(user=ann, daily_seconds=0, connects_per_minute=5)
    for _ in range(3):  # no daily limit and 5 connects a minute, for ann only
        client = await session(ann)
        info = await client.until(action="session_info")
        assert info["budget"]["seconds_left"] is None
        assert info["budget"]["connects_per_minute"] == 5
        await client.ws.disconnect()
    bob = await sync_to_async(get_user_model().objects.create_user)("bob", password="pw")
    await sync_to_async(UserBudget.objects.create)(user=bob, daily_tokens=10)
    await sync_to_async(spent)(bob, tokens=10)
    error, code = await refusal(bob)
    assert (error["code"], code) == ("budget_exhausted", 4007)


def test_usage_today_counts_only_today_and_open_sessions_up_to_now(db):
    user = get_user_model().objects.create_user("u", password="pw")
    now = timezone.now()
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    spent(user, seconds=30, tokens=7)
    # Began before midnight, ended after: only the part after midnight counts.
    RealtimeSession.objects.create(
        user=user, provider="openai", model="m", worker_id="w", status="closed",
        started_at=midnight - timedelta(seconds=100), ended_at=midnight + timedelta(seconds=20),
        last_seen_at=now, output_tokens=3,
    )  # fmt: skip
    # Yesterday's session: nothing.
    RealtimeSession.objects.create(
        user=user, provider="openai", model="m", worker_id="w", status="closed",
        started_at=midnight - timedelta(hours=3), ended_at=midnight - timedelta(hours=2),
        last_seen_at=now, output_tokens=1000,
    )  # fmt: skip
    # Open on some worker, started 40 s ago.
    RealtimeSession.objects.create(
        user=user, provider="openai", model="m", worker_id="w", status="live",
        started_at=now - timedelta(seconds=40), last_seen_at=now, input_tokens=5,
    )  # fmt: skip
    usage = usage_today(user.pk, now)
    if now - midnight > timedelta(seconds=40):
        assert usage.seconds == 30 + 20 + 40
    assert usage.tokens == 7 + 3 + 5


def test_the_admin_shows_what_is_left_and_staff_can_override(db, relay_runtime):
    relay_runtime.config = relay_runtime.config.replace(user_daily_tokens=100)
    staff = get_user_model().objects.create_superuser("boss", password="pw")
    user = get_user_model().objects.create_user("ann", password="pw")
    spent(user, tokens=40)
    http = HttpClient()
    http.force_login(staff)
    page = http.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert "realtime budget left today" in page.lower() and "60 of 100 tokens" in page
    added = http.post(
        "/admin/realtime/userbudget/add/",
        {"user": user.pk, "daily_tokens": 500, "note": "demo day"},
    )
    assert added.status_code == 302
    override = UserBudget.objects.get(user=user)
    assert override.daily_tokens == 500 and override.changed_by == "boss"
    listing = http.get("/admin/realtime/userbudget/").content.decode()
    assert "460 of 500 tokens" in listing


@pytest.mark.parametrize(
    "variable",
    [
        "RELAY_MAX_CONNECTS_PER_MINUTE",
        "RELAY_USER_DAILY_SECONDS",
        "RELAY_USER_DAILY_TOKENS",
        "RELAY_LOGIN_FAILURES_PER_USER",
        "RELAY_TICKETS_PER_MINUTE",
    ],
)
def test_budget_and_throttle_settings_are_validated_with_the_variable_named(variable):
    from realtime.kernel.config import ConfigError

    with pytest.raises(ConfigError, match=variable):
        load_config({variable: "-1"})
    with pytest.raises(ConfigError, match=variable):
        load_config({variable: "lots"})
    assert load_config({"RELAY_MAX_CONNECTS_PER_MINUTE": "0"}).connects_per_minute == 0
