"""/healthz and /readyz: alive, ready, and 503 naming the check when a dependency is down."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.db.utils import ConnectionHandler
from django.test import AsyncClient, override_settings

from realtime.ops import health
from tests.relay.conftest import configure

POSTGRES = {
    "ENGINE": "django.db.backends.postgresql",
    "HOST": "127.0.0.1",
    "PORT": "5432",
    "NAME": "postgres",
    "USER": "postgres",
    "PASSWORD": "postgres",
    "OPTIONS": {"connect_timeout": 2},
}
REDIS_UP = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
    }
}
REDIS_DOWN = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
    }
}


@pytest.fixture
def database(monkeypatch: pytest.MonkeyPatch, django_db_blocker: Any) -> Iterator[Any]:
    """Point the probe at a real PostgreSQL server; yields a function to choose its port."""

    def use(port: str) -> None:
        handler = ConnectionHandler({"default": POSTGRES | {"PORT": port}})
        monkeypatch.setattr(health, "connections", handler)

    use("5432")
    with django_db_blocker.unblock():
        yield use


async def readyz() -> tuple[int, dict[str, Any]]:
    response = await AsyncClient().get("/readyz")
    return response.status_code, response.json()


async def close_layer() -> None:
    layer = get_channel_layer()
    if hasattr(layer, "close_pools"):
        await layer.close_pools()


async def test_healthz_answers_ok_without_touching_anything():
    response = await AsyncClient().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.usefixtures("relay_config")
async def test_readyz_is_ready_with_postgres_redis_and_a_complete_provider(database):
    with override_settings(CHANNEL_LAYERS=REDIS_UP):
        status, body = await readyz()
        await close_layer()
    assert status == 200
    assert body == {
        "status": "ready",
        "checks": {"database": "ok", "channel_layer": "ok", "provider_config": "ok"},
    }


@pytest.mark.usefixtures("relay_config")
async def test_readyz_is_ready_with_the_in_memory_channel_layer(database):
    status, body = await readyz()
    assert status == 200 and body["checks"]["channel_layer"] == "ok"


@pytest.mark.usefixtures("relay_config")
async def test_readyz_says_503_and_names_the_channel_layer_when_redis_is_down(database):
    with override_settings(CHANNEL_LAYERS=REDIS_DOWN):
        status, body = await readyz()
        await close_layer()
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"]["channel_layer"] != "ok"
    assert body["checks"]["database"] == "ok"


@pytest.mark.usefixtures("relay_config")
async def test_readyz_says_503_and_names_the_database_when_postgres_is_down(database):
    database("1")  # nothing listens there: a real refused connection
    status, body = await readyz()
    assert status == 503
    assert body["checks"]["database"] == "error: OperationalError"
    assert body["checks"]["channel_layer"] == "ok"
    assert "postgres" not in str(body)  # no user name, host details or password in the answer


@pytest.mark.usefixtures("relay_config")
async def test_readyz_says_503_while_draining_and_recovers(database, relay_runtime):
    relay_runtime.draining = True
    status, body = await readyz()
    assert (status, body["status"]) == (503, "draining")
    assert all(result == "ok" for result in body["checks"].values())
    relay_runtime.draining = False
    assert (await readyz())[0] == 200


@pytest.mark.usefixtures("relay_config")
async def test_readyz_says_503_when_the_provider_configuration_is_incomplete(database):
    configure(endpoint="")
    status, body = await readyz()
    assert status == 503
    assert "REALTIME_SIMULATOR_URL" in body["checks"]["provider_config"]


def test_provider_problems_name_the_variable_to_set():
    from realtime.kernel.config import load_config

    openai = load_config({"OPENAI_API_KEY": "sk-secret-value-123456"})
    assert health.provider_problem(openai) is None
    keyless = dataclasses.replace(openai, api_key=None)
    assert health.provider_problem(keyless) == "OPENAI_API_KEY is not set"
    azure = load_config(
        {"AZURE_OPENAI_ENDPOINT": "https://x.openai.azure.com", "AZURE_OPENAI_DEPLOYMENT": "d"}
    )
    assert azure.use_entra_id and health.provider_problem(azure) is None


async def test_probes_refuse_writes():
    assert (await AsyncClient().post("/readyz")).status_code == 405
