"""Which upstream, and how to reach it: the provider chosen from the environment (Azure,
OpenAI or the simulator) with its endpoint, model, key and Entra ID scope; GPT-Live's own
settings, and the Realtime API settings it refuses. Part of ``realtime.kernel.config``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from realtime.kernel import envvars as ev
from realtime.kernel.envvars import ConfigError

if TYPE_CHECKING:
    from realtime.kernel.config import RelayConfig

# The variables that choose a paid provider; test harnesses strip them to stay on the simulator.
PROVIDER_VARIABLES = (
    "OPENAI_API_KEY",
    "OPENAI_ENDPOINT",
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_DEPLOYMENT",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_API_VERSION",
)

DEFAULT_OPENAI_MODEL = "gpt-realtime"
DEFAULT_LIVE_MODEL = "gpt-live-1"
DEFAULT_RESPONSES_MODEL = "gpt-5-mini"  # the backend a GPT-Live session delegates tools to
REALTIME_ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
LIVE_ENTRA_SCOPE = "https://ai.azure.com/.default"  # Foundry /openai/v1 (configurable)


def provider_settings(
    env: Mapping[str, str], api: str, azure_endpoint: str | None, azure_deployment: str | None
) -> dict[str, Any]:
    """Which upstream: Azure, OpenAI or the simulator, with its endpoint, model and key."""
    default_model = DEFAULT_LIVE_MODEL if api == "live" else DEFAULT_OPENAI_MODEL
    if azure_endpoint or azure_deployment:
        if not azure_endpoint:
            raise ConfigError("AZURE_OPENAI_DEPLOYMENT is set but AZURE_OPENAI_ENDPOINT is not")
        if not azure_deployment:
            raise ConfigError("AZURE_OPENAI_ENDPOINT is set but AZURE_OPENAI_DEPLOYMENT is not")
        api_version = ev.text(env, "AZURE_OPENAI_API_VERSION")
        api_key = ev.text(env, "AZURE_OPENAI_API_KEY")
        return {
            "provider": "azure",
            "dialect": "beta" if api_version else "ga",
            "endpoint": azure_endpoint,
            "model": azure_deployment,
            "api_key": api_key,
            "azure_api_version": api_version,
            "use_entra_id": api_key is None,
            "entra_scope": ev.text(env, "AZURE_OPENAI_ENTRA_SCOPE")
            or (LIVE_ENTRA_SCOPE if api == "live" else REALTIME_ENTRA_SCOPE),
        }
    if ev.text(env, "AZURE_OPENAI_API_KEY") or ev.text(env, "AZURE_OPENAI_API_VERSION"):
        raise ConfigError(
            "AZURE_OPENAI_API_KEY/AZURE_OPENAI_API_VERSION need AZURE_OPENAI_ENDPOINT "
            "and AZURE_OPENAI_DEPLOYMENT"
        )
    openai_key = ev.text(env, "OPENAI_API_KEY")
    openai_endpoint = ev.url(env, "OPENAI_ENDPOINT", ("wss", "ws", "https", "http"))
    if openai_key:
        return {
            "provider": "openai",
            "dialect": "ga",
            "endpoint": _websocket_base(openai_endpoint) if openai_endpoint else None,
            "model": ev.text(env, "OPENAI_MODEL") or default_model,
            "api_key": openai_key,
        }
    if openai_endpoint:
        raise ConfigError("OPENAI_ENDPOINT is set but OPENAI_API_KEY is not")
    return {
        "provider": "simulator",
        "dialect": "ga",
        "endpoint": ev.url(env, "REALTIME_SIMULATOR_URL", ("ws", "wss")),
        "model": ev.text(env, "OPENAI_MODEL") or default_model,
        "api_key": ev.text(env, "REALTIME_SIMULATOR_API_KEY"),
    }


def live_settings(env: Mapping[str, str], api: str) -> dict[str, Any]:
    delegation = ev.choice(env, "RELAY_LIVE_DELEGATION", ("responses", "client"), "responses")
    return {
        "upstream_api": api,
        "live_delegation": delegation,
        "live_responses_model": ev.text(env, "RELAY_LIVE_RESPONSES_MODEL")
        or DEFAULT_RESPONSES_MODEL,
    }


# Realtime API settings GPT-Live has no equivalent for: refused rather than silently ignored.
NOT_ON_LIVE = {
    "RELAY_TURN_DETECTION": "GPT-Live ends turns itself (full duplex)",
    "RELAY_VAD_IDLE_TIMEOUT_MS": "GPT-Live has no idle timeout",
    "RELAY_VAD_EAGERNESS": "GPT-Live has no turn detection settings",
    "RELAY_NOISE_REDUCTION": "GPT-Live has no noise reduction setting",
    "RELAY_TRUNCATION": "GPT-Live compacts its context itself",
    "RELAY_PROMPT_ID": "GPT-Live has no stored prompts",
    "RELAY_TRANSCRIPTION_LANGUAGE": "GPT-Live has no transcription settings",
    "RELAY_TRANSCRIPTION_PROMPT": "GPT-Live has no transcription settings",
}


def check_live(env: Mapping[str, str], config: RelayConfig) -> None:
    for name, why in NOT_ON_LIVE.items():
        if ev.text(env, name):
            raise ConfigError(f"{name} cannot be used with RELAY_UPSTREAM_API=live: {why}")
    if config.output_modalities != "audio":
        raise ConfigError("RELAY_OUTPUT_MODALITIES=text cannot be used with GPT-Live (audio only)")
    if config.dialect == "beta":
        raise ConfigError(
            "AZURE_OPENAI_API_VERSION selects the legacy preview path; GPT-Live on Azure uses "
            "/openai/v1: unset AZURE_OPENAI_API_VERSION"
        )


def _websocket_base(url: str) -> str:
    """OpenAI's websocket base: ws(s) scheme, path ending in /v1 (the SDK appends /realtime)."""
    parts = urlsplit(url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{parts.netloc}{path}{query}"
