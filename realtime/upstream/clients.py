"""SDK clients for the upstream APIs, built once per process and configuration.

OpenAI GA, Azure GA (``/openai/v1``, key or Entra ID bearer token) and Azure preview
(``AsyncAzureOpenAI`` → ``/openai/realtime?api-version=…&deployment=…``, beta events), plus the
offline simulator (an OpenAI-compatible endpoint). Building a client costs ~0.8 MiB and ~20 ms
(it loads the TLS trust store): far too much per session, so the runtime keeps one per
configuration; each session still opens its own connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from openai import AsyncAzureOpenAI, AsyncOpenAI
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.uri import get_proxy, parse_uri

from realtime.compat.websockets_redaction import install_handshake_redaction
from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.endings import SessionEnded

log = logging.getLogger("realtime.upstream")

TokenProvider = Callable[[], Awaitable[str]]


class UpstreamClients:
    """The runtime's SDK clients (one per configuration) and its Entra ID credential."""

    def __init__(self) -> None:
        install_handshake_redaction()  # keys never reach websockets' DEBUG handshake dump
        self._clients: dict[tuple[object, ...], Any] = {}
        self._override: TokenProvider | None = None
        self._providers: dict[str, TokenProvider] = {}  # one per Entra scope
        self._credential: Any = None

    def use_token_provider(self, provider: TokenProvider | None) -> None:
        """Use this async callable for Entra ID tokens (tests; or a custom credential)."""
        self._override = provider
        self._clients.clear()  # clients hold the provider they were built with

    def token_provider(self, scope: str) -> TokenProvider:
        """One DefaultAzureCredential per runtime; the SDK awaits it on every connect."""
        if self._override is not None:
            return self._override
        provider = self._providers.get(scope)
        if provider is None:
            from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

            if self._credential is None:
                self._credential = DefaultAzureCredential()
            provider = self._providers[scope] = get_bearer_token_provider(self._credential, scope)
        return provider

    async def aclose(self) -> None:
        if self._credential is not None:
            await self._credential.close()
            self._credential = None
        self._providers.clear()
        self._clients.clear()

    def client(self, config: RelayConfig) -> Any:
        key = config.connection_key
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = self._build(config)
        return client

    def _build(self, config: RelayConfig) -> Any:
        if config.provider == "azure":
            credential: Any = config.api_key or self.token_provider(config.entra_scope)
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
                    websocket_base_url=f"{websocket_origin(config.endpoint or '')}/openai",
                    **auth,
                )
            base = f"{websocket_origin(config.endpoint or '')}/openai/v1"
            return AsyncOpenAI(api_key=credential, websocket_base_url=base, base_url=base)
        if config.provider == "simulator":
            if not config.endpoint:
                raise SessionEnded(
                    endings.UPSTREAM_UNAVAILABLE.because("the simulator is not running")
                )
            base = config.endpoint.rstrip("/")
            return AsyncOpenAI(
                api_key=config.api_key or "simulator", websocket_base_url=f"{base}/v1"
            )
        return AsyncOpenAI(api_key=config.api_key, websocket_base_url=config.endpoint)


def websocket_options(config: RelayConfig) -> dict[str, Any]:
    return {
        "open_timeout": config.connect_timeout_s,
        "ping_interval": 20,
        "ping_timeout": 20,
        "close_timeout": 2,
        "max_size": 16 * 1024 * 1024,
        "proxy": upstream_proxy(websocket_origin(config.endpoint or OPENAI_SOCKET_ORIGIN)),
    }


OPENAI_SOCKET_ORIGIN = "wss://api.openai.com"  # the SDK's default


@functools.lru_cache(maxsize=16)
def upstream_proxy(origin: str) -> str | None:
    """The proxy for the upstream (``wss_proxy``/``https_proxy``/``all_proxy`` and
    ``no_proxy``, as websockets reads them), looked up once per process: websockets would
    read the whole environment again on every connect, 9 % of a worker's CPU in a connect
    storm. None: connect directly."""
    return get_proxy(parse_uri(origin.rstrip("/") + "/"))


def websocket_origin(endpoint: str) -> str:
    """https://res.openai.azure.com → wss://res.openai.azure.com (http → ws)."""
    base = endpoint.rstrip("/")
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if base.startswith(http):
            return ws + base[len(http) :]
    return base


async def enter(manager: Any, config: RelayConfig) -> Any:
    """Open an SDK connection manager; connect failures become the session's endings."""
    try:
        async with asyncio.timeout(config.connect_timeout_s + 1):
            return await manager.enter()
    except SessionEnded:
        raise
    except InvalidStatus as exc:
        status = exc.response.status_code
        ending = (
            endings.UPSTREAM_AUTH_FAILED if status in (401, 403) else endings.UPSTREAM_UNAVAILABLE
        )
        raise SessionEnded(
            ending.because(f"the realtime service refused the session (HTTP {status})")
        ) from None
    except TimeoutError:
        raise SessionEnded(
            endings.UPSTREAM_UNAVAILABLE.because("the realtime service did not answer in time")
        ) from None
    except (OSError, ConnectionClosed) as exc:
        raise SessionEnded(
            endings.UPSTREAM_UNAVAILABLE.because(
                f"the realtime service is unreachable ({type(exc).__name__})"
            )
        ) from None
    except Exception as exc:  # SDK/credential errors: never echo their text (may hold URLs)
        log.warning("upstream connect failed: %s", type(exc).__name__)
        raise SessionEnded(
            endings.UPSTREAM_UNAVAILABLE.because(
                f"could not open the realtime session ({type(exc).__name__})"
            )
        ) from None


async def close_connection(connection: Any) -> None:
    """Close an SDK connection, bounded; the socket may already be gone."""
    try:
        async with asyncio.timeout(3):
            await connection.close()
    except Exception as exc:
        log.debug("upstream close: %s", type(exc).__name__)
