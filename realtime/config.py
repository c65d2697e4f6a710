"""Relay configuration: read the environment once into a typed, frozen object.

The variable names follow the reference ASP.NET Core middle tier (AZURE_OPENAI_*, OPENAI_*),
so an existing deployment's environment carries over unchanged. Nothing else in the project
reads ``os.environ`` for provider settings: code receives a ``RelayConfig``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from realtime.proxy import Network, parse_networks

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
DEFAULT_LIVE_MODEL = "gpt-live-1"
DEFAULT_RESPONSES_MODEL = "gpt-5-mini"  # the backend a GPT-Live session delegates tools to
REALTIME_ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
LIVE_ENTRA_SCOPE = "https://ai.azure.com/.default"  # Foundry /openai/v1 (configurable)
DEFAULT_GREETING = "You are now connected to the realtime relay."
DEFAULT_INSTRUCTIONS = "You are a helpful, concise voice assistant."
DEFAULT_PAID_CONNECTS_PER_MINUTE = 20


class ConfigError(ValueError):
    """Invalid or half-given configuration; the message names the variable."""


@dataclass(frozen=True)
class TurnDetection:
    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int | None = None  # server_vad: prompt the user after this much silence
    eagerness: str = "auto"  # semantic_vad: low, medium, high or auto
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
    entra_scope: str = REALTIME_ENTRA_SCOPE
    upstream_api: str = "realtime"  # realtime (the Realtime API) or live (GPT-Live)
    live_delegation: str = "responses"  # responses (tools run here) or client
    live_responses_model: str = DEFAULT_RESPONSES_MODEL
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
    workers: int = 0  # serve's worker processes; 0 = every core with Redis, else one
    # Realtime API session settings (GA; the legacy preview path takes what its shape has).
    noise_reduction: str | None = None  # near_field, far_field or None (off)
    truncation: str | float = "auto"  # auto, disabled, or a retention ratio (0 < r ≤ 1)
    output_modalities: str = "audio"  # audio (with its transcript) or text
    prompt_id: str | None = None  # a stored prompt (OpenAI): id and optional version
    prompt_version: str | None = None
    transcription_language: str | None = None
    transcription_prompt: str | None = None
    # Extensions (docs/tools.md): server-side tools, a per-user session policy, client messages.
    tools: str = ""  # RELAY_TOOLS: dotted module paths ("examples" = the shipped examples)
    tool_timeout_s: float = 10.0
    session_policy: str = ""  # RELAY_SESSION_POLICY: dotted path of a callable
    client_messages: str = ""  # RELAY_CLIENT_MESSAGES: enabled extension message types
    # Conversation records (realtime/conversation.py); None = only with the simulator.
    store_transcripts: bool | None = None
    transcript_retention_days: int = 30
    # Sessions across workers (realtime/registry.py).
    heartbeat_seconds: float = 10.0
    reaper_enabled: bool = True
    # Observability (docs/operations.md).
    metrics_token: str = field(default="", repr=False)
    metrics_allow_loopback: bool = True
    log_level: str = "INFO"
    log_format: str = "plain"
    # Security (docs/security.md): proxies, throttles, per-user budgets (0 = off).
    trusted_proxies: tuple[Network, ...] = ()
    login_failures_per_user: int = 10
    login_failures_per_address: int = 50
    login_failure_window_s: int = 900
    tickets_per_minute: int = 30
    max_connects_per_minute: int | None = None  # None = 20 with a paid upstream, else off
    user_daily_seconds: int = 0
    user_daily_tokens: int = 0

    @property
    def connects_per_minute(self) -> int:
        """Connects a user (or an anonymous address) may make a minute; 0 = no limit."""
        if self.max_connects_per_minute is None:
            return 0 if self.provider == "simulator" else DEFAULT_PAID_CONNECTS_PER_MINUTE
        return self.max_connects_per_minute

    @property
    def anonymous_allowed(self) -> bool:
        """A paid upstream is never open to anonymous clients unless explicitly enabled."""
        if self.allow_anonymous is None:
            return self.provider == "simulator"
        return self.allow_anonymous

    @property
    def transcripts_stored(self) -> bool:
        """Conversation text is kept by default only for the simulator: with a paid upstream,
        storing what users say is the operator's choice (RELAY_STORE_TRANSCRIPTS=true)."""
        if self.store_transcripts is None:
            return self.provider == "simulator"
        return self.store_transcripts

    @property
    def provider_label(self) -> str:
        """What a client may be told about the upstream: never a key, never a URL with secrets."""
        labels = {"openai": "OpenAI", "azure": "Azure OpenAI", "simulator": "Simulator"}
        return f"{labels[self.provider]} ({self.model})"

    @property
    def api(self) -> str:
        """The upstream API family (``session_info``'s ``api``): realtime or live."""
        return self.upstream_api

    @property
    def connection_key(self) -> tuple[object, ...]:
        """What an upstream SDK client depends on (sessions with other settings share it)."""
        return (
            self.provider,
            self.dialect,
            self.endpoint,
            self.model,
            self.api_key,
            self.azure_api_version,
            self.use_entra_id,
            self.entra_scope,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never reach a log line, a page or a client frame."""
        return tuple(value for value in (self.api_key, self.metrics_token) if value)

    def with_endpoint(self, endpoint: str) -> RelayConfig:
        return dataclasses.replace(self, endpoint=endpoint)

    def replace(self, **changes: object) -> RelayConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


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
    idle = _int(env, "RELAY_VAD_IDLE_TIMEOUT_MS", 0, 0, 30 * 60 * 1000)
    eagerness = (_text(env, "RELAY_VAD_EAGERNESS") or "auto").lower()
    if eagerness not in ("low", "medium", "high", "auto"):
        raise ConfigError("RELAY_VAD_EAGERNESS must be low, medium, high or auto")
    if idle and kind != "server_vad":
        raise ConfigError("RELAY_VAD_IDLE_TIMEOUT_MS needs RELAY_TURN_DETECTION=server_vad")
    if idle and idle < 1000:
        raise ConfigError("RELAY_VAD_IDLE_TIMEOUT_MS must be 0 (off) or at least 1000")
    return TurnDetection(
        type=kind,
        threshold=_float(env, "RELAY_VAD_THRESHOLD", 0.5, 0.0, 1.0),
        prefix_padding_ms=_int(env, "RELAY_VAD_PREFIX_PADDING_MS", 300, 0, 5000),
        silence_duration_ms=_int(env, "RELAY_VAD_SILENCE_DURATION_MS", 500, 0, 10000),
        idle_timeout_ms=idle or None,
        eagerness=eagerness,
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
        "workers": _int(env, "RELAY_WORKERS", 0, 0, 1024),
        **_session_settings(env),
        "tools": _text(env, "RELAY_TOOLS") or "",
        "tool_timeout_s": _float(env, "RELAY_TOOL_TIMEOUT_SECONDS", 10.0, 0.1, 600.0),
        "session_policy": _text(env, "RELAY_SESSION_POLICY") or "",
        "client_messages": _text(env, "RELAY_CLIENT_MESSAGES") or "",
        "store_transcripts": _bool(env, "RELAY_STORE_TRANSCRIPTS"),
        "transcript_retention_days": _int(env, "RELAY_TRANSCRIPT_RETENTION_DAYS", 30, 0, 36_500),
        "heartbeat_seconds": _float(env, "RELAY_HEARTBEAT_SECONDS", 10.0, 0.05, 3600.0),
        "reaper_enabled": _bool(env, "RELAY_REAPER_ENABLED") is not False,
        "metrics_token": _secret(env, "RELAY_METRICS_TOKEN"),
        "metrics_allow_loopback": _bool(env, "RELAY_METRICS_ALLOW_LOOPBACK") is not False,
        "log_level": _choice(env, "RELAY_LOG_LEVEL", LOG_LEVELS, "INFO", upper=True),
        "log_format": _choice(env, "RELAY_LOG_FORMAT", ("plain", "json"), "plain"),
        **_security_settings(env),
    }

    api = _choice(env, "RELAY_UPSTREAM_API", ("realtime", "live"), "realtime")
    common |= _live_settings(env, api)
    config = RelayConfig(**_provider(env, api, azure_endpoint, azure_deployment), **common)
    if api == "live":
        _check_live(env, config)
    return config


def _provider(
    env: Mapping[str, str], api: str, azure_endpoint: str | None, azure_deployment: str | None
) -> dict[str, Any]:
    """Which upstream: Azure, OpenAI or the simulator, with its endpoint, model and key."""
    default_model = DEFAULT_LIVE_MODEL if api == "live" else DEFAULT_OPENAI_MODEL
    if azure_endpoint or azure_deployment:
        if not azure_endpoint:
            raise ConfigError("AZURE_OPENAI_DEPLOYMENT is set but AZURE_OPENAI_ENDPOINT is not")
        if not azure_deployment:
            raise ConfigError("AZURE_OPENAI_ENDPOINT is set but AZURE_OPENAI_DEPLOYMENT is not")
        api_version = _text(env, "AZURE_OPENAI_API_VERSION")
        api_key = _text(env, "AZURE_OPENAI_API_KEY")
        return {
            "provider": "azure",
            "dialect": "beta" if api_version else "ga",
            "endpoint": azure_endpoint,
            "model": azure_deployment,
            "api_key": api_key,
            "azure_api_version": api_version,
            "use_entra_id": api_key is None,
            "entra_scope": _text(env, "AZURE_OPENAI_ENTRA_SCOPE")
            or (LIVE_ENTRA_SCOPE if api == "live" else REALTIME_ENTRA_SCOPE),
        }
    if _text(env, "AZURE_OPENAI_API_KEY") or _text(env, "AZURE_OPENAI_API_VERSION"):
        raise ConfigError(
            "AZURE_OPENAI_API_KEY/AZURE_OPENAI_API_VERSION need AZURE_OPENAI_ENDPOINT "
            "and AZURE_OPENAI_DEPLOYMENT"
        )
    openai_key = _text(env, "OPENAI_API_KEY")
    openai_endpoint = _url(env, "OPENAI_ENDPOINT", ("wss", "ws", "https", "http"))
    if openai_key:
        return {
            "provider": "openai",
            "dialect": "ga",
            "endpoint": _websocket_base(openai_endpoint) if openai_endpoint else None,
            "model": _text(env, "OPENAI_MODEL") or default_model,
            "api_key": openai_key,
        }
    if openai_endpoint:
        raise ConfigError("OPENAI_ENDPOINT is set but OPENAI_API_KEY is not")
    return {
        "provider": "simulator",
        "dialect": "ga",
        "endpoint": _url(env, "REALTIME_SIMULATOR_URL", ("ws", "wss")),
        "model": _text(env, "OPENAI_MODEL") or default_model,
        "api_key": _text(env, "REALTIME_SIMULATOR_API_KEY"),
    }


def _live_settings(env: Mapping[str, str], api: str) -> dict[str, Any]:
    delegation = _choice(env, "RELAY_LIVE_DELEGATION", ("responses", "client"), "responses")
    return {
        "upstream_api": api,
        "live_delegation": delegation,
        "live_responses_model": _text(env, "RELAY_LIVE_RESPONSES_MODEL") or DEFAULT_RESPONSES_MODEL,
    }


# Realtime API settings GPT-Live has no equivalent for: refused rather than silently ignored.
_NOT_ON_LIVE = {
    "RELAY_TURN_DETECTION": "GPT-Live ends turns itself (full duplex)",
    "RELAY_VAD_IDLE_TIMEOUT_MS": "GPT-Live has no idle timeout",
    "RELAY_VAD_EAGERNESS": "GPT-Live has no turn detection settings",
    "RELAY_NOISE_REDUCTION": "GPT-Live has no noise reduction setting",
    "RELAY_TRUNCATION": "GPT-Live compacts its context itself",
    "RELAY_PROMPT_ID": "GPT-Live has no stored prompts",
    "RELAY_TRANSCRIPTION_LANGUAGE": "GPT-Live has no transcription settings",
    "RELAY_TRANSCRIPTION_PROMPT": "GPT-Live has no transcription settings",
}


def _check_live(env: Mapping[str, str], config: RelayConfig) -> None:
    for name, why in _NOT_ON_LIVE.items():
        if _text(env, name):
            raise ConfigError(f"{name} cannot be used with RELAY_UPSTREAM_API=live: {why}")
    if config.output_modalities != "audio":
        raise ConfigError("RELAY_OUTPUT_MODALITIES=text cannot be used with GPT-Live (audio only)")
    if config.dialect == "beta":
        raise ConfigError(
            "AZURE_OPENAI_API_VERSION selects the legacy preview path; GPT-Live on Azure uses "
            "/openai/v1: unset AZURE_OPENAI_API_VERSION"
        )


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _choice(
    env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str, upper: bool = False
) -> str:
    raw = _text(env, name)
    if raw is None:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _secret(env: Mapping[str, str], name: str) -> str:
    """NAME, or the contents of the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = _text(env, f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE names a file that cannot be read ({exc})") from None
    return _text(env, name) or ""


def _session_settings(env: Mapping[str, str]) -> dict[str, object]:
    """Realtime session settings: noise reduction, truncation, modalities, prompt, transcription."""
    noise = (_text(env, "RELAY_NOISE_REDUCTION") or "off").lower()
    noise_types = {"near": "near_field", "near_field": "near_field", "far": "far_field",
                   "far_field": "far_field", "off": None, "none": None}  # fmt: skip
    if noise not in noise_types:
        raise ConfigError("RELAY_NOISE_REDUCTION must be near, far or off")
    truncation: str | float = (_text(env, "RELAY_TRUNCATION") or "auto").lower()
    if truncation not in ("auto", "disabled"):
        try:
            truncation = float(truncation)
        except ValueError:
            truncation = -1.0
        if not 0.0 < truncation <= 1.0:
            raise ConfigError(
                "RELAY_TRUNCATION must be auto, disabled or a retention ratio between 0 and 1"
            )
    return {
        "noise_reduction": noise_types[noise],
        "truncation": truncation,
        "output_modalities": _choice(env, "RELAY_OUTPUT_MODALITIES", ("audio", "text"), "audio"),
        "prompt_id": _text(env, "RELAY_PROMPT_ID"),
        "prompt_version": _text(env, "RELAY_PROMPT_VERSION"),
        "transcription_language": _text(env, "RELAY_TRANSCRIPTION_LANGUAGE"),
        "transcription_prompt": _text(env, "RELAY_TRANSCRIPTION_PROMPT"),
    }


def _security_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Trusted proxies, login and ticket throttles, per-user budgets (docs/security.md)."""
    try:
        trusted = parse_networks(_text(env, "RELAY_TRUSTED_PROXIES") or "")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    connects = _text(env, "RELAY_MAX_CONNECTS_PER_MINUTE")
    return {
        "trusted_proxies": trusted,
        "login_failures_per_user": _int(env, "RELAY_LOGIN_FAILURES_PER_USER", 10, 0, 100_000),
        "login_failures_per_address": _int(
            env, "RELAY_LOGIN_FAILURES_PER_ADDRESS", 50, 0, 1_000_000
        ),
        "login_failure_window_s": _int(env, "RELAY_LOGIN_FAILURE_WINDOW_SECONDS", 900, 1, 86_400),
        "tickets_per_minute": _int(env, "RELAY_TICKETS_PER_MINUTE", 30, 0, 100_000),
        "max_connects_per_minute": None
        if connects is None
        else _int(env, "RELAY_MAX_CONNECTS_PER_MINUTE", 0, 0, 100_000),
        "user_daily_seconds": _int(env, "RELAY_USER_DAILY_SECONDS", 0, 0, 10_000_000),
        "user_daily_tokens": _int(env, "RELAY_USER_DAILY_TOKENS", 0, 0, 10**12),
    }


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
