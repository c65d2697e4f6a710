"""Configuration from the environment: provider choice and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from realtime.kernel.config import ConfigError, load_config


def test_no_credentials_means_the_simulator():
    config = load_config({})
    assert config.provider == "simulator"
    assert config.model == "gpt-realtime"
    assert config.port == 8080


def test_openai_with_custom_endpoint():
    config = load_config(
        {"OPENAI_API_KEY": "sk-test", "OPENAI_ENDPOINT": "https://proxy.example/", "PORT": "9000"}
    )
    assert (config.provider, config.dialect, config.model) == ("openai", "ga", "gpt-realtime")
    assert config.endpoint == "wss://proxy.example/v1"
    assert config.port == 9000


def test_azure_key_ga_and_preview():
    env = {
        "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com",
        "AZURE_OPENAI_DEPLOYMENT": "dep",
        "AZURE_OPENAI_API_KEY": "k",
    }
    ga = load_config(env)
    assert (ga.provider, ga.dialect, ga.use_entra_id) == ("azure", "ga", False)
    preview = load_config(env | {"AZURE_OPENAI_API_VERSION": "2025-04-01-preview"})
    assert preview.dialect == "beta" and preview.azure_api_version == "2025-04-01-preview"


def test_azure_without_key_uses_entra_id():
    config = load_config(
        {"AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_DEPLOYMENT": "d"}
    )
    assert config.use_entra_id and config.api_key is None


def test_the_key_is_not_in_the_repr():
    assert "sk-secret" not in repr(load_config({"OPENAI_API_KEY": "sk-secret"}))


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com"}, "AZURE_OPENAI_DEPLOYMENT"),
        ({"AZURE_OPENAI_DEPLOYMENT": "d"}, "AZURE_OPENAI_ENDPOINT"),
        ({"AZURE_OPENAI_API_KEY": "k"}, "AZURE_OPENAI_ENDPOINT"),
        ({"OPENAI_ENDPOINT": "https://x"}, "OPENAI_API_KEY"),
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"RELAY_VAD_THRESHOLD": "2"}, "RELAY_VAD_THRESHOLD"),
        ({"RELAY_TURN_DETECTION": "magic"}, "RELAY_TURN_DETECTION"),
        ({"RELAY_REDIS_TIMEOUT_SECONDS": "0"}, "RELAY_REDIS_TIMEOUT_SECONDS"),
        ({"RELAY_REDIS_TIMEOUT_SECONDS": "soon"}, "RELAY_REDIS_TIMEOUT_SECONDS"),
        ({"RELAY_REDIS_MAX_CONNECTIONS": "1"}, "RELAY_REDIS_MAX_CONNECTIONS"),
        (
            {"AZURE_OPENAI_ENDPOINT": "res.openai.azure.com", "AZURE_OPENAI_DEPLOYMENT": "d"},
            "AZURE_OPENAI_ENDPOINT",
        ),
    ],
)
def test_invalid_configuration_names_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        load_config(env)


def test_start_up_stops_with_a_message_naming_the_variable(tmp_path):
    """manage.py exits non-zero with the variable's name, not a traceback."""
    env = {"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "Configuration error: AZURE_OPENAI_ENDPOINT is set but AZURE_OPENAI_DEPLOYMENT" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
