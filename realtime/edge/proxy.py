"""Who the client is behind a reverse proxy: forwarded headers, from trusted peers only.

``RELAY_TRUSTED_PROXIES`` lists the proxies (IPs or CIDRs) whose ``X-Forwarded-For`` and
``X-Forwarded-Proto`` the relay believes. For a request from such a peer, the client is the
rightmost address of ``X-Forwarded-For`` that is not itself a trusted proxy: each proxy
appends the address it saw, so everything left of the last untrusted hop was written by the
client and proves nothing. A request from any other peer keeps its TCP address, whatever
headers it sends. daphne's own ``--proxy-headers`` is never used: it takes the *leftmost*
address, which the client chooses.

``ForwardedMiddleware`` rewrites ``scope["client"]`` (and ``scope["scheme"]``) before
anything reads them: Django's ``REMOTE_ADDR`` (the /metrics loopback rule, throttles), the
session registry's ``client_addr``, per-address budgets.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from realtime.kernel.networks import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR = b"x-forwarded-for"
FORWARDED_PROTO = b"x-forwarded-proto"


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def is_trusted(address: str | None, trusted: Sequence[Network]) -> bool:
    parsed = _address(address or "")
    return parsed is not None and any(parsed in network for network in trusted)


def client_from_forwarded(
    peer: str, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str:
    """The client's address: ``peer`` unless it is a trusted proxy; then the rightmost
    untrusted hop of the X-Forwarded-For values (in header order). A garbled hop stops the
    walk: it came from the client side, so the hop to its right is the last one proven."""
    if not trusted or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = peer
    for hop in reversed(hops):
        parsed = _address(hop)
        if parsed is None:
            return client
        client = str(parsed)
        if not any(parsed in network for network in trusted):
            return client
    return client


class ForwardedMiddleware:
    """ASGI middleware: the real client address (and scheme) for HTTP and WebSocket scopes.
    Runs inside ``RuntimeMiddleware``: the trusted proxies are the runtime's configuration."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        runtime = scope.get("relay")
        trusted = runtime.config.trusted_proxies if runtime is not None else ()
        if trusted and scope["type"] in ("http", "websocket"):
            scope = resolve(scope, trusted)
        return await self.inner(scope, receive, send)


def resolve(scope: dict[str, Any], trusted: Sequence[Network]) -> dict[str, Any]:
    """The scope with the client (and scheme) a trusted proxy forwarded; else unchanged."""
    client = scope.get("client")
    peer = str(client[0]) if client else ""
    if not is_trusted(peer, trusted):
        return scope
    headers = scope.get("headers") or []
    forwarded = [v.decode("latin-1") for k, v in headers if k.lower() == FORWARDED_FOR]
    address = client_from_forwarded(peer, forwarded, trusted)
    scope = {**scope, "client": [address, 0 if address != peer else client[1]]}
    protos = [v.decode("latin-1") for k, v in headers if k.lower() == FORWARDED_PROTO]
    if protos:
        proto = protos[-1].split(",")[-1].strip().lower()  # the nearest proxy's word
        if proto in ("http", "https"):
            websocket = scope["type"] == "websocket"
            scope["scheme"] = {"http": "ws", "https": "wss"}[proto] if websocket else proto
    return scope
