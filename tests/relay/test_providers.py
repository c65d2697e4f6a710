"""Each provider route: the simulator sees the right path, query and auth; the dialect works."""

from __future__ import annotations

import pytest

from realtime.kernel.config import load_config
from realtime.ops import runtime as relay_runtime
from tests.relay.conftest import Client, use_config

pytestmark = pytest.mark.django_db(transaction=True)


async def text_turn() -> Client:
    client = Client()
    await client.connect()
    await client.send_json({"type": "user_message", "text": "route check"})
    await client.until(action="text_done")
    await client.until(action="response_done")
    assert client.of("text_delta") and len(client.audio) > 0
    await client.close()
    return client


def http_base(simulator) -> str:
    return simulator.base_url.replace("ws://", "http://")


async def test_openai_ga_with_a_custom_endpoint(simulator, settings):
    use_config(
        load_config(
            {
                "OPENAI_API_KEY": "sk-test-openai",
                "OPENAI_ENDPOINT": simulator.base_url,
                "OPENAI_MODEL": "gpt-realtime-mini",
            }
        )
    )
    await text_turn()
    record = simulator.connections[-1]
    assert (record.path, record.query, record.route, record.dialect) == (
        "/v1/realtime",
        {"model": "gpt-realtime-mini"},
        "openai",
        "ga",
    )
    assert record.headers["authorization"] == "Bearer sk-test-openai"
    assert "openai-beta" not in record.headers


async def test_azure_ga_with_an_api_key(simulator, settings):
    use_config(
        load_config(
            {
                "AZURE_OPENAI_ENDPOINT": http_base(simulator),
                "AZURE_OPENAI_DEPLOYMENT": "my-deployment",
                "AZURE_OPENAI_API_KEY": "azure-key-123",
            }
        )
    )
    await text_turn()
    record = simulator.connections[-1]
    assert (record.path, record.query, record.route, record.dialect) == (
        "/openai/v1/realtime",
        {"model": "my-deployment"},
        "azure_ga",
        "ga",
    )
    assert record.headers["authorization"] == "Bearer azure-key-123"


async def test_azure_ga_with_an_entra_token_provider(simulator, settings):
    calls = 0

    async def token() -> str:
        nonlocal calls
        calls += 1
        return f"entra-token-{calls}"

    relay_runtime.current().clients.use_token_provider(token)
    try:
        use_config(
            load_config(
                {"AZURE_OPENAI_ENDPOINT": http_base(simulator), "AZURE_OPENAI_DEPLOYMENT": "dep"}
            )
        )
        await text_turn()
        await text_turn()
    finally:
        relay_runtime.current().clients.use_token_provider(None)
    first, second = simulator.connections[-2:]
    assert first.headers["authorization"] == "Bearer entra-token-1"
    assert second.headers["authorization"] == "Bearer entra-token-2"  # fresh token per connect


@pytest.mark.parametrize("auth", ["key", "entra"])
async def test_azure_preview_speaks_beta(simulator, settings, auth):
    async def token() -> str:
        return "preview-token"

    env = {
        "AZURE_OPENAI_ENDPOINT": http_base(simulator),
        "AZURE_OPENAI_DEPLOYMENT": "preview-dep",
        "AZURE_OPENAI_API_VERSION": "2025-04-01-preview",
    }
    if auth == "key":
        env["AZURE_OPENAI_API_KEY"] = "preview-key"
    relay_runtime.current().clients.use_token_provider(token)
    try:
        use_config(load_config(env))
        await text_turn()
    finally:
        relay_runtime.current().clients.use_token_provider(None)
    record = simulator.connections[-1]
    assert (record.path, record.route, record.dialect) == (
        "/openai/realtime",
        "azure_preview",
        "beta",
    )
    assert record.query["api-version"] == "2025-04-01-preview"
    assert record.query["deployment"] == "preview-dep"
    if auth == "key":
        assert record.headers["api-key"] == "preview-key"
    else:
        assert record.headers["authorization"] == "Bearer preview-token"
    update = next(e for e in record.received if e["type"] == "session.update")
    assert "modalities" in update["session"] and "type" not in update["session"]
    sent = {e["type"] for e in record.sent}
    assert "response.audio_transcript.delta" in sent and "conversation.item.created" in sent


# ---- GPT-Live: the same settings reach the Live routes ------------------------------------


async def test_gpt_live_on_openai_reaches_the_live_sessions_route_with_the_key(simulator):
    use_config(
        load_config(
            {
                "RELAY_UPSTREAM_API": "live",
                "OPENAI_API_KEY": "sk-test-live",
                "OPENAI_ENDPOINT": simulator.base_url,
            }
        )
    )
    await text_turn()
    record = simulator.connections[-1]
    assert (record.path, record.query, record.route, record.dialect) == (
        "/v1/live/sessions",
        {},  # GPT-Live takes no query: the model goes in session.start
        "openai_live",
        "live",
    )
    assert record.headers["authorization"] == "Bearer sk-test-live"
    start = record.received[0]
    assert start["type"] == "session.start" and start["session"]["model"] == "gpt-live-1"


async def test_gpt_live_on_azure_foundry_with_a_key(simulator):
    use_config(
        load_config(
            {
                "RELAY_UPSTREAM_API": "live",
                "AZURE_OPENAI_ENDPOINT": http_base(simulator),
                "AZURE_OPENAI_DEPLOYMENT": "my-live-deployment",
                "AZURE_OPENAI_API_KEY": "azure-live-key",
            }
        )
    )
    await text_turn()
    record = simulator.connections[-1]
    assert (record.path, record.route) == ("/openai/v1/live/sessions", "azure_live")
    assert record.headers["authorization"] == "Bearer azure-live-key"
    assert record.received[0]["session"]["model"] == "my-live-deployment"


async def test_gpt_live_on_azure_with_entra_id_asks_for_the_live_scope(simulator):
    scopes: list[str] = []

    class Credential:
        async def get_token(self, *wanted: str, **kwargs: object) -> object:
            scopes.extend(wanted)
            return type("Token", (), {"token": "entra-live-token", "expires_on": 2**31})()

        async def close(self) -> None:
            return None

    clients = relay_runtime.current().clients
    clients._credential = Credential()  # what DefaultAzureCredential would be, minus Azure
    try:
        use_config(
            load_config(
                {
                    "RELAY_UPSTREAM_API": "live",
                    "AZURE_OPENAI_ENDPOINT": http_base(simulator),
                    "AZURE_OPENAI_DEPLOYMENT": "live-dep",
                }
            )
        )
        await text_turn()
    finally:
        await clients.aclose()
    record = simulator.connections[-1]
    assert record.headers["authorization"] == "Bearer entra-live-token"
    assert scopes == ["https://ai.azure.com/.default"]
