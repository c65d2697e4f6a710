"""Relay configuration: read the environment once into a typed, frozen object.

The variable names follow the reference ASP.NET Core middle tier (AZURE_OPENAI_*, OPENAI_*),
so an existing deployment's environment carries over unchanged. Nothing else in the project
reads ``os.environ`` for provider settings: code receives a ``RelayConfig``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import urlsplit

Provider = Literal["openai", "azure", "simulator"]
Dialect = Literal["ga", "beta"]

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
DEFAULT_GREETING = "You are now connected to the realtime relay."
DEFAULT_INSTRUCTIONS = "You are a helpful, concise voice assistant."


class ConfigError(ValueError):
    """Invalid or half-given configuration; the message names the variable."""


@dataclass(frozen=True)
class TurnDetection:
    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    create_response: bool = True
    interrupt_response: bool = True


@dataclass(frozen=True)
class RelayConfig:
    provider: Provider
    dialect: Dialect
    # OpenAI: a websocket base URL ending in /v1 (None = the SDK's default).
    # Azure: the resource endpoint (https://RES.openai.azure.com).
    # Simulator: the simulator's base URL (ws://127.0.0.1:PORT), None until started.
    endpoint: str | None
    model: str  # OpenAI model, or the Azure deployment name
    api_key: str | None = field(default=None, repr=False)
    azure_api_version: str | None = None
    use_entra_id: bool = False
    port: int = 8080
    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = "alloy"
    transcription_model: str | None = "whisper-1"
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    greeting: str = DEFAULT_GREETING
    connect_timeout_s: float = 10.0
    audio_coalesce_ms: int = 20
    stall_timeout_s: float = 15.0
    playback_report_wait_ms: int = 300
    max_text_bytes: int = 64 * 1024
    max_binary_bytes: int = 256 * 1024
    # Access (realtime/access.py). allow_anonymous None = only with the simulator.
    allow_anonymous: bool | None = None
    allowed_origins: tuple[str, ...] = ()
    ticket_ttl_s: int = 30
    # Limits (realtime/limits.py); 0 disables a limit.
    max_sessions_per_user: int = 3
    max_sessions_total: int = 500
    max_session_seconds: int = 1800
    session_warning_seconds: int = 60
    idle_timeout_seconds: int = 300
    max_messages_per_minute: int = 20
    drain_seconds: float = 10.0

    @property
    def anonymous_allowed(self) -> bool:
        """A paid upstream is never open to anonymous clients unless explicitly enabled."""
        if self.allow_anonymous is None:
            return self.provider == "simulator"
        return self.allow_anonymous

    @property
    def provider_label(self) -> str:
        """What a client may be told about the upstream: never a key, never a URL with secrets."""
        labels = {"openai": "OpenAI", "azure": "Azure OpenAI", "simulator": "Simulator"}
        return f"{labels[self.provider]} ({self.model})"

    def with_endpoint(self, endpoint: str) -> RelayConfig:
        return dataclasses.replace(self, endpoint=endpoint)


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, lo: N, hi: N, kind: type[N]) -> N:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    return _number(env, name, default, lo, hi, int)


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    return _number(env, name, float(default), float(lo), float(hi), float)


def _url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = _text(env, name)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{name} must be a URL starting with {' or '.join(schemes)}://")
    return raw.rstrip("/")


def _turn_detection(env: Mapping[str, str]) -> TurnDetection | None:
    kind = (_text(env, "RELAY_TURN_DETECTION") or "server_vad").lower()
    if kind in ("none", "null", "off", "manual"):
        return None
    if kind not in ("server_vad", "semantic_vad"):
        raise ConfigError("RELAY_TURN_DETECTION must be server_vad, semantic_vad or none")
    return TurnDetection(
        type=kind,
        threshold=_float(env, "RELAY_VAD_THRESHOLD", 0.5, 0.0, 1.0),
        prefix_padding_ms=_int(env, "RELAY_VAD_PREFIX_PADDING_MS", 300, 0, 5000),
        silence_duration_ms=_int(env, "RELAY_VAD_SILENCE_DURATION_MS", 500, 0, 10000),
    )


def load_config(env: Mapping[str, str]) -> RelayConfig:
    """Build the configuration from an environment mapping, or raise ConfigError."""
    azure_endpoint = _url(env, "AZURE_OPENAI_ENDPOINT", ("https", "http"))
    azure_deployment = _text(env, "AZURE_OPENAI_DEPLOYMENT")
    common = {
        "port": _int(env, "PORT", 8080, 1, 65535),
        "instructions": _text(env, "RELAY_INSTRUCTIONS") or DEFAULT_INSTRUCTIONS,
        "voice": _text(env, "RELAY_VOICE") or "alloy",
        "transcription_model": _transcription_model(env),
        "turn_detection": _turn_detection(env),
        "greeting": _text(env, "RELAY_GREETING") or DEFAULT_GREETING,
        "connect_timeout_s": _float(env, "RELAY_UPSTREAM_CONNECT_TIMEOUT", 10.0, 0.5, 120.0),
        "audio_coalesce_ms": _int(env, "RELAY_AUDIO_COALESCE_MS", 20, 0, 200),
        "stall_timeout_s": _float(env, "RELAY_UPSTREAM_STALL_TIMEOUT", 15.0, 0.1, 600.0),
        "playback_report_wait_ms": _int(env, "RELAY_PLAYBACK_REPORT_WAIT_MS", 300, 0, 5000),
        "max_text_bytes": _int(env, "RELAY_MAX_TEXT_BYTES", 64 * 1024, 256, 1024 * 1024 - 1),
        "max_binary_bytes": _int(env, "RELAY_MAX_BINARY_BYTES", 256 * 1024, 1024, 1024 * 1024 - 1),
        "allow_anonymous": _bool(env, "RELAY_ALLOW_ANONYMOUS"),
        "allowed_origins": tuple(
            item.strip().rstrip("/")
            for item in (_text(env, "RELAY_ALLOWED_ORIGINS") or "").split(",")
            if item.strip()
        ),
        "ticket_ttl_s": _int(env, "RELAY_TICKET_TTL_SECONDS", 30, 5, 600),
        "max_sessions_per_user": _int(env, "RELAY_MAX_SESSIONS_PER_USER", 3, 0, 100_000),
        "max_sessions_total": _int(env, "RELAY_MAX_SESSIONS_TOTAL", 500, 0, 1_000_000),
        # The upstream caps a session at 60 minutes: end ours first, with a warning.
        "max_session_seconds": _int(env, "RELAY_MAX_SESSION_SECONDS", 1800, 0, 3540),
        "session_warning_seconds": _int(env, "RELAY_SESSION_WARNING_SECONDS", 60, 0, 600),
        "idle_timeout_seconds": _int(env, "RELAY_IDLE_TIMEOUT_SECONDS", 300, 0, 86_400),
        "max_messages_per_minute": _int(env, "RELAY_MAX_MESSAGES_PER_MINUTE", 20, 0, 10_000),
        "drain_seconds": _float(env, "RELAY_DRAIN_SECONDS", 10.0, 0.0, 300.0),
    }

    if azure_endpoint or azure_deployment:
        if not azure_endpoint:
            raise ConfigError("AZURE_OPENAI_DEPLOYMENT is set but AZURE_OPENAI_ENDPOINT is not")
        if not azure_deployment:
            raise ConfigError("AZURE_OPENAI_ENDPOINT is set but AZURE_OPENAI_DEPLOYMENT is not")
        api_version = _text(env, "AZURE_OPENAI_API_VERSION")
        api_key = _text(env, "AZURE_OPENAI_API_KEY")
        return RelayConfig(
            provider="azure",
            dialect="beta" if api_version else "ga",
            endpoint=azure_endpoint,
            model=azure_deployment,
            api_key=api_key,
            azure_api_version=api_version,
            use_entra_id=api_key is None,
            **common,
        )

    if _text(env, "AZURE_OPENAI_API_KEY") or _text(env, "AZURE_OPENAI_API_VERSION"):
        raise ConfigError(
            "AZURE_OPENAI_API_KEY/AZURE_OPENAI_API_VERSION need AZURE_OPENAI_ENDPOINT "
            "and AZURE_OPENAI_DEPLOYMENT"
        )

    openai_key = _text(env, "OPENAI_API_KEY")
    openai_endpoint = _url(env, "OPENAI_ENDPOINT", ("wss", "ws", "https", "http"))
    if openai_key:
        return RelayConfig(
            provider="openai",
            dialect="ga",
            endpoint=_websocket_base(openai_endpoint) if openai_endpoint else None,
            model=_text(env, "OPENAI_MODEL") or DEFAULT_OPENAI_MODEL,
            api_key=openai_key,
            **common,
        )
    if openai_endpoint:
        raise ConfigError("OPENAI_ENDPOINT is set but OPENAI_API_KEY is not")

    return RelayConfig(
        provider="simulator",
        dialect="ga",
        endpoint=_url(env, "REALTIME_SIMULATOR_URL", ("ws", "wss")),
        model=_text(env, "OPENAI_MODEL") or DEFAULT_OPENAI_MODEL,
        api_key=_text(env, "REALTIME_SIMULATOR_API_KEY"),
        **common,
    )


def _bool(env: Mapping[str, str], name: str) -> bool | None:
    raw = _text(env, name)
    if raw is None:
        return None
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _transcription_model(env: Mapping[str, str]) -> str | None:
    value = _text(env, "RELAY_TRANSCRIPTION_MODEL") or "whisper-1"
    return None if value.lower() in ("none", "off") else value


def _websocket_base(url: str) -> str:
    """OpenAI's websocket base: ws(s) scheme, path ending in /v1 (the SDK appends /realtime)."""
    parts = urlsplit(url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{parts.netloc}{path}{query}"
