"""Neither the API key nor DJANGO_SECRET_KEY reaches a client, a log record or a page on the
paths issue 13 added: budgets in session_info, budget and connect refusals, throttled logins
(429), the budget admin."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.test import Client as HttpClient

from realtime.kernel.config import load_config
from realtime.models import UserBudget
from tests.relay.conftest import configure, use_config
from tests.security.test_secrets import (  # noqa: F401 (fixtures)
    AllRecords,
    RecordingClient,
    keyed,
    provider_env,
    record_leaks,
    records,
)

pytestmark = pytest.mark.django_db(transaction=True)


def exact_leaks(blob: bytes | str, secret: str) -> list[str]:
    """The secret or its base64 forms (no partial match: a Django key has no fixed prefix)."""
    data = blob.encode("utf-8", "surrogatepass") if isinstance(blob, str) else blob
    raw = secret.encode()
    needles = [raw] + [
        encode(b"x" * shift + raw)[4:-4]
        for shift in range(3)
        for encode in (base64.b64encode, base64.urlsafe_b64encode)
    ]
    return [n.decode() for n in needles if n in data]


class AsUserRecording(RecordingClient):
    def __init__(self, sink: list, user: Any) -> None:
        super().__init__(sink)
        from tests.relay.conftest import AsUser

        app = self.ws.application
        self.ws.application = AsUser(app, user)


async def test_budget_and_throttle_paths_carry_no_secret(
    keyed,  # noqa: F811 (the fixture imported above)
    records: AllRecords,  # noqa: F811
    django_user_model: Any,
) -> None:
    simulator, key = keyed
    use_config(load_config(provider_env("openai", simulator, key)))
    configure(user_daily_seconds=2, heartbeat_seconds=0.2, max_connects_per_minute=2)
    secret_key = django_settings.SECRET_KEY
    user = await sync_to_async(django_user_model.objects.create_user)("ann", password="pw")
    sink: list[bytes | str] = []

    client = AsUserRecording(sink, user)
    await client.connect()
    assert (await client.until(action="session_info"))["budget"]["seconds_left"] <= 2
    assert (await client.until(type="error", timeout=10))["code"] == "budget_exhausted"
    await client.until_closed()
    for expected in ("budget_exhausted", "too_many_connects"):
        client = AsUserRecording(sink, user)
        await client.connect(greeting=False)
        assert (await client.until(type="error"))["code"] == expected
        await client.until_closed()

    bodies: list[bytes] = []
    http = HttpClient()
    for n in range(12):
        auth = "Basic " + base64.b64encode(f"ann:wrong{n}".encode()).decode()
        response = await sync_to_async(http.post)("/api/realtime/ticket", HTTP_AUTHORIZATION=auth)
        bodies.append(response.content + str(dict(response.headers)).encode())
    assert b"too_many_requests" in bodies[-1]
    staff = await sync_to_async(django_user_model.objects.create_superuser)("boss", "b@x.io", "pw")
    await sync_to_async(UserBudget.objects.create)(user=user, daily_tokens=10)
    await sync_to_async(http.force_login)(staff)
    for path in (f"/admin/auth/user/{user.pk}/change/", "/admin/realtime/userbudget/"):
        page = await sync_to_async(http.get)(path)
        assert page.status_code == 200
        bodies.append(page.content)

    assert simulator.connections and key in simulator.connections[0].headers["authorization"]
    for secret in (key, secret_key):
        assert [f for f in sink if exact_leaks(f, secret)] == [], "a secret reached a client"
        assert [b for b in bodies if exact_leaks(b, secret)] == [], "a secret reached a page"
    assert record_leaks(records.records, key, skip=("websockets.server",)) == []
    logged = " ".join(f"{r.getMessage()} {r.args!r}" for r in records.records)
    assert exact_leaks(logged, secret_key) == []
