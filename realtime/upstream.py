"""The upstream realtime session, opened with the official ``openai`` SDK.

OpenAI GA, Azure GA (``/openai/v1``, key or Entra ID bearer token) and Azure preview
(``AsyncAzureOpenAI`` → ``/openai/realtime?api-version=…&deployment=…``, beta events), plus the
offline simulator (an OpenAI-compatible endpoint). Frames are read raw: the consumer parses
JSON itself and dispatches on the ``type`` string, whatever the dialect.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from openai import AsyncAzureOpenAI, AsyncOpenAI
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime.compat.sdk import close_code, raw_socket
from realtime.config import RelayConfig

log = logging.getLogger("realtime.upstream")


ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
TokenProvider = Callable[[], Awaitable[str]]

_token_provider: TokenProvider | None = None
_credential: Any = None


class UpstreamConnectError(Exception):
    """The upstream could not be reached or refused the session."""

    def __init__(self, code: str, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status


def set_token_provider(provider: TokenProvider | None) -> None:
    """Use this async callable for Entra ID tokens (tests; or a custom credential)."""
    global _token_provider
    _token_provider = provider
    _client.cache_clear()  # clients hold the provider they were built with


def entra_token_provider() -> TokenProvider:
    """One DefaultAzureCredential per process; the SDK awaits the provider on every connect."""
    global _token_provider, _credential
    if _token_provider is None:
        from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

        _credential = DefaultAzureCredential()
        _token_provider = get_bearer_token_provider(_credential, ENTRA_SCOPE)
    return _token_provider


async def close_credential() -> None:
    global _credential, _token_provider
    if _credential is not None:
        await _credential.close()
        _credential, _token_provider = None, None
        _client.cache_clear()


def _connection_options(config: RelayConfig) -> dict[str, Any]:
    return {
        "open_timeout": config.connect_timeout_s,
        "ping_interval": 20,
        "ping_timeout": 20,
        "close_timeout": 2,
        "max_size": 16 * 1024 * 1024,
    }


def _connect_manager(config: RelayConfig) -> Any:
    options = _connection_options(config)
    client = _client(config)
    realtime = client.beta.realtime if config.dialect == "beta" else client.realtime
    return realtime.connect(model=config.model, websocket_connection_options=options)


@functools.lru_cache(maxsize=8)
def _client(config: RelayConfig) -> Any:
    """One SDK client per process and configuration: building one costs ~0.8 MiB and ~20 ms
    (it loads the TLS trust store), far too much per session. Only its websocket factory is
    used; each session still gets its own connection."""
    if config.provider == "azure":
        credential: Any = config.api_key if config.api_key else entra_token_provider()
        if config.dialect == "beta":
            auth = (
                {"api_key": credential}
                if config.api_key
                else {"azure_ad_token_provider": credential}
            )
            return AsyncAzureOpenAI(
                azure_endpoint=config.endpoint or "",
                api_version=config.azure_api_version,
                azure_deployment=config.model,
                # Explicit: the SDK would force wss:// even for an http:// endpoint (tests).
                websocket_base_url=f"{_websocket_origin(config.endpoint or '')}/openai",
                **auth,
            )
        base = f"{_websocket_origin(config.endpoint or '')}/openai/v1"
        return AsyncOpenAI(api_key=credential, websocket_base_url=base, base_url=base)
    if config.provider == "simulator":
        if not config.endpoint:
            raise UpstreamConnectError("upstream_unavailable", "the simulator is not running")
        base = config.endpoint.rstrip("/")
        return AsyncOpenAI(api_key=config.api_key or "simulator", websocket_base_url=f"{base}/v1")
    return AsyncOpenAI(api_key=config.api_key, websocket_base_url=config.endpoint)


def _websocket_origin(endpoint: str) -> str:
    """https://res.openai.azure.com → wss://res.openai.azure.com (http → ws)."""
    base = endpoint.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(http):
            return ws + base[len(http) :]
    return base


class UpstreamSession:
    """One open realtime session: raw frames in, raw JSON strings out."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self._connection = connection
        self.dialect = dialect
        self._closed = False
        # Frames go straight onto the SDK connection's websocket (both dialects): the GA
        # send_raw adds a reconnect queue and locks per message, which we do not use
        # (reconnecting mid-conversation would lose the session anyway).
        raw = raw_socket(connection)
        self.send = raw.send
        self.recv = raw.recv

    @classmethod
    async def open(cls, config: RelayConfig) -> UpstreamSession:
        try:
            manager = _connect_manager(config)
            async with asyncio.timeout(config.connect_timeout_s + 1):
                connection = await manager.enter()
        except UpstreamConnectError:
            raise
        except InvalidStatus as exc:
            status = exc.response.status_code
            code = "upstream_auth_failed" if status in (401, 403) else "upstream_unavailable"
            raise UpstreamConnectError(
                code, f"the realtime service refused the session (HTTP {status})", status
            ) from None
        except TimeoutError:
            raise UpstreamConnectError(
                "upstream_unavailable", "the realtime service did not answer in time"
            ) from None
        except (OSError, ConnectionClosed) as exc:
            raise UpstreamConnectError(
                "upstream_unavailable",
                f"the realtime service is unreachable ({type(exc).__name__})",
            ) from None
        except Exception as exc:  # SDK/credential errors: never echo their text (may hold URLs)
            log.warning("upstream connect failed: %s", type(exc).__name__)
            raise UpstreamConnectError(
                "upstream_unavailable",
                f"could not open the realtime session ({type(exc).__name__})",
            ) from None
        return cls(connection, config.dialect)

    @property
    def close_code(self) -> int | None:
        return close_code(self._connection)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            async with asyncio.timeout(3):
                await self._connection.close()
        except Exception as exc:  # best effort: the socket may already be gone
            log.debug("upstream close: %s", type(exc).__name__)
