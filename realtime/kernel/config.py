"""Relay configuration: read the environment once into a typed, frozen object.

The variable names follow the reference ASP.NET Core middle tier (AZURE_OPENAI_*, OPENAI_*),
so an existing deployment's environment carries over unchanged. Nothing else in the project
reads ``os.environ`` for provider settings: code receives a ``RelayConfig``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from realtime.kernel import envvars as ev
from realtime.kernel.envvars import ConfigError
from realtime.kernel.networks import Network, parse_networks
from realtime.kernel.providers import (
    DEFAULT_RESPONSES_MODEL,
    REALTIME_ENTRA_SCOPE,
    check_live,
    live_settings,
    provider_settings,
)

Provider = Literal["openai", "azure", "simulator"]
Dialect = Literal["ga", "beta"]

DEFAULT_GREETING = "You are now connected to the realtime relay."
DEFAULT_INSTRUCTIONS = "You are a helpful, concise voice assistant."
DEFAULT_PAID_CONNECTS_PER_MINUTE = 20


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


AUDIO_BYTES_PER_MS = {"pcm16": 48, "pcmu": 8}  # the audio formats an edge may ask for


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
    # The audio both ways between the edge and the upstream: pcm16 (PCM16 mono 24 kHz, the
    # browser's) or pcmu (G.711 μ-law 8 kHz, a phone line's). Set per session by its edge.
    audio_format: str = "pcm16"
    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = "alloy"
    transcription_model: str | None = "whisper-1"
    turn_detection: TurnDetection | None = field(default_factory=TurnDetection)
    greeting: str = DEFAULT_GREETING
    connect_timeout_s: float = 10.0
    audio_coalesce_ms: int = 20
    stall_timeout_s: float = 15.0
    # Renewal and recovery of the upstream session (realtime/session/renewal.py). None: the
    # family's default (the Realtime API 3300 s; GPT-Live from its session's expires_at);
    # 0: no renewal on a timer.
    upstream_max_seconds: float | None = None
    upstream_retries: int = 2
    # Resume after a lost socket (realtime/session/continuity.py); 0: no resume.
    resume_seconds: int = 60
    playback_report_wait_ms: int = 300
    max_text_bytes: int = 64 * 1024
    max_binary_bytes: int = 256 * 1024
    # Access (realtime/edge/access.py). allow_anonymous None = only with the simulator.
    allow_anonymous: bool | None = None
    allowed_origins: tuple[str, ...] = ()
    ticket_ttl_s: int = 30
    # Limits (realtime/guards/session_limits.py); 0 disables a limit.
    max_sessions_per_user: int = 3
    max_sessions_total: int = 500
    max_session_seconds: int = 1800
    session_warning_seconds: int = 60
    idle_timeout_seconds: int = 300
    max_messages_per_minute: int = 20  # user_message
    max_control_messages_per_minute: int = 60  # every other client message (session/core.py)
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
    # Conversation records (realtime/records/conversation.py); None = only with the simulator.
    store_transcripts: bool | None = None
    transcript_retention_days: int = 30
    # Sessions across workers (realtime/ops/presence.py).
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
    # The phone edge (docs/phone.md): off unless TWILIO_AUTH_TOKEN is set.
    twilio_auth_token: str = field(default="", repr=False)
    public_url: str | None = (
        None  # RELAY_PUBLIC_URL: https://host[:port] as callers' webhooks see it
    )
    phone_user: str = ""  # RELAY_PHONE_USER: the Django user calls run as ("" = anonymous)
    phone_show_numbers: bool = False  # RELAY_PHONE_SHOW_NUMBERS: unmasked numbers in logs/admin
    phone_stream_ttl_s: int = 30  # the stream token's lifetime (webhook → media stream)
    phone_greeting: str = ""  # RELAY_PHONE_GREETING: said by Twilio before the stream ("": none)
    # Redis (realtime/compat/redis_pools.py): every call bounded, every pool capped, per process.
    redis_timeout_s: float = 2.0
    redis_max_connections: int = 20

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
    def audio_bytes_per_ms(self) -> int:
        """Bytes of ``audio_format`` audio a millisecond (48 for PCM16 24 kHz, 8 for μ-law)."""
        return AUDIO_BYTES_PER_MS[self.audio_format]

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
        values = (self.api_key, self.metrics_token, self.twilio_auth_token)
        return tuple(value for value in values if value)

    @property
    def phone_enabled(self) -> bool:
        """The phone edge (``/twilio/voice``, ``/twilio/media``) answers only when set up."""
        return bool(self.twilio_auth_token)

    def with_endpoint(self, endpoint: str) -> RelayConfig:
        return dataclasses.replace(self, endpoint=endpoint)

    def replace(self, **changes: object) -> RelayConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _turn_detection(env: Mapping[str, str]) -> TurnDetection | None:
    kind = (ev.text(env, "RELAY_TURN_DETECTION") or "server_vad").lower()
    if kind in ("none", "null", "off", "manual"):
        return None
    if kind not in ("server_vad", "semantic_vad"):
        raise ConfigError("RELAY_TURN_DETECTION must be server_vad, semantic_vad or none")
    idle = ev.integer(env, "RELAY_VAD_IDLE_TIMEOUT_MS", 0, 0, 30 * 60 * 1000)
    eagerness = (ev.text(env, "RELAY_VAD_EAGERNESS") or "auto").lower()
    if eagerness not in ("low", "medium", "high", "auto"):
        raise ConfigError("RELAY_VAD_EAGERNESS must be low, medium, high or auto")
    if idle and kind != "server_vad":
        raise ConfigError("RELAY_VAD_IDLE_TIMEOUT_MS needs RELAY_TURN_DETECTION=server_vad")
    if idle and idle < 1000:
        raise ConfigError("RELAY_VAD_IDLE_TIMEOUT_MS must be 0 (off) or at least 1000")
    return TurnDetection(
        type=kind,
        threshold=ev.decimal(env, "RELAY_VAD_THRESHOLD", 0.5, 0.0, 1.0),
        prefix_padding_ms=ev.integer(env, "RELAY_VAD_PREFIX_PADDING_MS", 300, 0, 5000),
        silence_duration_ms=ev.integer(env, "RELAY_VAD_SILENCE_DURATION_MS", 500, 0, 10000),
        idle_timeout_ms=idle or None,
        eagerness=eagerness,
    )


def load_config(env: Mapping[str, str]) -> RelayConfig:
    """Build the configuration from an environment mapping, or raise ConfigError."""
    azure_endpoint = ev.url(env, "AZURE_OPENAI_ENDPOINT", ("https", "http"))
    azure_deployment = ev.text(env, "AZURE_OPENAI_DEPLOYMENT")
    common = {
        "port": ev.integer(env, "PORT", 8080, 1, 65535),
        "instructions": ev.text(env, "RELAY_INSTRUCTIONS") or DEFAULT_INSTRUCTIONS,
        "voice": ev.text(env, "RELAY_VOICE") or "alloy",
        "transcription_model": _transcription_model(env),
        "turn_detection": _turn_detection(env),
        "greeting": ev.text(env, "RELAY_GREETING") or DEFAULT_GREETING,
        "connect_timeout_s": ev.decimal(env, "RELAY_UPSTREAM_CONNECT_TIMEOUT", 10.0, 0.5, 120.0),
        "audio_coalesce_ms": ev.integer(env, "RELAY_AUDIO_COALESCE_MS", 20, 0, 200),
        "stall_timeout_s": ev.decimal(env, "RELAY_UPSTREAM_STALL_TIMEOUT", 15.0, 0.1, 600.0),
        "upstream_max_seconds": _upstream_max_seconds(env),
        "upstream_retries": ev.integer(env, "RELAY_UPSTREAM_RETRIES", 2, 0, 10),
        "resume_seconds": ev.integer(env, "RELAY_RESUME_SECONDS", 60, 0, 3600),
        "playback_report_wait_ms": ev.integer(env, "RELAY_PLAYBACK_REPORT_WAIT_MS", 300, 0, 5000),
        "max_text_bytes": ev.integer(env, "RELAY_MAX_TEXT_BYTES", 64 * 1024, 256, 1024 * 1024 - 1),
        "max_binary_bytes": ev.integer(
            env, "RELAY_MAX_BINARY_BYTES", 256 * 1024, 1024, 1024 * 1024 - 1
        ),
        "allow_anonymous": ev.boolean(env, "RELAY_ALLOW_ANONYMOUS"),
        "allowed_origins": tuple(
            item.strip().rstrip("/")
            for item in (ev.text(env, "RELAY_ALLOWED_ORIGINS") or "").split(",")
            if item.strip()
        ),
        "ticket_ttl_s": ev.integer(env, "RELAY_TICKET_TTL_SECONDS", 30, 5, 600),
        "max_sessions_per_user": ev.integer(env, "RELAY_MAX_SESSIONS_PER_USER", 3, 0, 100_000),
        "max_sessions_total": ev.integer(env, "RELAY_MAX_SESSIONS_TOTAL", 500, 0, 1_000_000),
        # The relay renews the upstream session before its cap (60 minutes on the Realtime
        # API), so a client session may outlast it.
        "max_session_seconds": ev.integer(env, "RELAY_MAX_SESSION_SECONDS", 1800, 0, 86_400),
        "session_warning_seconds": ev.integer(env, "RELAY_SESSION_WARNING_SECONDS", 60, 0, 600),
        "idle_timeout_seconds": ev.integer(env, "RELAY_IDLE_TIMEOUT_SECONDS", 300, 0, 86_400),
        "max_messages_per_minute": ev.integer(env, "RELAY_MAX_MESSAGES_PER_MINUTE", 20, 0, 10_000),
        "max_control_messages_per_minute": ev.integer(
            env, "RELAY_MAX_CONTROL_MESSAGES_PER_MINUTE", 60, 0, 10_000
        ),
        "drain_seconds": ev.decimal(env, "RELAY_DRAIN_SECONDS", 10.0, 0.0, 300.0),
        "workers": ev.integer(env, "RELAY_WORKERS", 0, 0, 1024),
        **_session_settings(env),
        "tools": ev.text(env, "RELAY_TOOLS") or "",
        "tool_timeout_s": ev.decimal(env, "RELAY_TOOL_TIMEOUT_SECONDS", 10.0, 0.1, 600.0),
        "session_policy": ev.text(env, "RELAY_SESSION_POLICY") or "",
        "client_messages": ev.text(env, "RELAY_CLIENT_MESSAGES") or "",
        "store_transcripts": ev.boolean(env, "RELAY_STORE_TRANSCRIPTS"),
        "transcript_retention_days": ev.integer(
            env, "RELAY_TRANSCRIPT_RETENTION_DAYS", 30, 0, 36_500
        ),
        "heartbeat_seconds": ev.decimal(env, "RELAY_HEARTBEAT_SECONDS", 10.0, 0.05, 3600.0),
        "reaper_enabled": ev.boolean(env, "RELAY_REAPER_ENABLED") is not False,
        "metrics_token": ev.secret(env, "RELAY_METRICS_TOKEN"),
        "metrics_allow_loopback": ev.boolean(env, "RELAY_METRICS_ALLOW_LOOPBACK") is not False,
        "log_level": ev.choice(env, "RELAY_LOG_LEVEL", LOG_LEVELS, "INFO", upper=True),
        "log_format": ev.choice(env, "RELAY_LOG_FORMAT", ("plain", "json"), "plain"),
        **_security_settings(env),
        **_phone_settings(env),
    }

    api = ev.choice(env, "RELAY_UPSTREAM_API", ("realtime", "live"), "realtime")
    common |= live_settings(env, api)
    config = RelayConfig(**provider_settings(env, api, azure_endpoint, azure_deployment), **common)
    if api == "live":
        check_live(env, config)
    return config


def _session_settings(env: Mapping[str, str]) -> dict[str, object]:
    """Realtime session settings: noise reduction, truncation, modalities, prompt, transcription."""
    noise = (ev.text(env, "RELAY_NOISE_REDUCTION") or "off").lower()
    noise_types = {"near": "near_field", "near_field": "near_field", "far": "far_field",
                   "far_field": "far_field", "off": None, "none": None}  # fmt: skip
    if noise not in noise_types:
        raise ConfigError("RELAY_NOISE_REDUCTION must be near, far or off")
    truncation: str | float = (ev.text(env, "RELAY_TRUNCATION") or "auto").lower()
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
        "output_modalities": ev.choice(env, "RELAY_OUTPUT_MODALITIES", ("audio", "text"), "audio"),
        "prompt_id": ev.text(env, "RELAY_PROMPT_ID"),
        "prompt_version": ev.text(env, "RELAY_PROMPT_VERSION"),
        "transcription_language": ev.text(env, "RELAY_TRANSCRIPTION_LANGUAGE"),
        "transcription_prompt": ev.text(env, "RELAY_TRANSCRIPTION_PROMPT"),
    }


def _phone_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The phone edge (docs/phone.md): Twilio's auth token, the public URL, who calls run as."""
    public = ev.url(env, "RELAY_PUBLIC_URL", ("https", "http"))
    return {
        "twilio_auth_token": ev.secret(env, "TWILIO_AUTH_TOKEN"),
        "public_url": public.rstrip("/") if public else None,
        "phone_user": ev.text(env, "RELAY_PHONE_USER") or "",
        "phone_show_numbers": ev.boolean(env, "RELAY_PHONE_SHOW_NUMBERS") is True,
        "phone_stream_ttl_s": ev.integer(env, "RELAY_PHONE_STREAM_TTL_SECONDS", 30, 5, 300),
        "phone_greeting": (ev.text(env, "RELAY_PHONE_GREETING") or "")[:500],
    }


def _security_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """Trusted proxies, login and ticket throttles, per-user budgets (docs/security.md)."""
    try:
        trusted = parse_networks(ev.text(env, "RELAY_TRUSTED_PROXIES") or "")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    connects = ev.text(env, "RELAY_MAX_CONNECTS_PER_MINUTE")
    return {
        "trusted_proxies": trusted,
        "login_failures_per_user": ev.integer(env, "RELAY_LOGIN_FAILURES_PER_USER", 10, 0, 100_000),
        "login_failures_per_address": ev.integer(
            env, "RELAY_LOGIN_FAILURES_PER_ADDRESS", 50, 0, 1_000_000
        ),
        "login_failure_window_s": ev.integer(
            env, "RELAY_LOGIN_FAILURE_WINDOW_SECONDS", 900, 1, 86_400
        ),
        "tickets_per_minute": ev.integer(env, "RELAY_TICKETS_PER_MINUTE", 30, 0, 100_000),
        "max_connects_per_minute": None
        if connects is None
        else ev.integer(env, "RELAY_MAX_CONNECTS_PER_MINUTE", 0, 0, 100_000),
        "user_daily_seconds": ev.integer(env, "RELAY_USER_DAILY_SECONDS", 0, 0, 10_000_000),
        "user_daily_tokens": ev.integer(env, "RELAY_USER_DAILY_TOKENS", 0, 0, 10**12),
        # Connect, read and pool-wait timeout of every Redis call; connections per pool.
        "redis_timeout_s": ev.decimal(env, "RELAY_REDIS_TIMEOUT_SECONDS", 2.0, 0.5, 30.0),
        "redis_max_connections": ev.integer(env, "RELAY_REDIS_MAX_CONNECTIONS", 20, 2, 10_000),
    }


def _upstream_max_seconds(env: Mapping[str, str]) -> float | None:
    if ev.text(env, "RELAY_UPSTREAM_MAX_SECONDS") is None:
        return None
    seconds = ev.decimal(env, "RELAY_UPSTREAM_MAX_SECONDS", 0.0, 0.0, 86_400.0)
    if 0 < seconds < 1:
        raise ConfigError("RELAY_UPSTREAM_MAX_SECONDS must be 0 (no renewal) or at least 1")
    return seconds


def _transcription_model(env: Mapping[str, str]) -> str | None:
    value = ev.text(env, "RELAY_TRANSCRIPTION_MODEL") or "whisper-1"
    return None if value.lower() in ("none", "off") else value
