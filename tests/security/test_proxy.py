"""Forwarded headers: believed from trusted proxies only, rightmost untrusted hop wins."""

from __future__ import annotations

import pytest

from realtime.edge.proxy import client_from_forwarded, resolve
from realtime.kernel.config import ConfigError, load_config
from realtime.kernel.networks import parse_networks

TRUSTED = parse_networks("10.0.0.0/8, 192.0.2.1, ::1")


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # HAProxy that appends: the client wrote the left part, only the last hop is proven.
        ("10.1.1.1", ["127.0.0.1, 203.0.113.7"], "203.0.113.7"),
        # Two trusted proxies in a row: skip both.
        ("10.1.1.1", ["198.51.100.2, 203.0.113.7, 10.2.2.2"], "203.0.113.7"),
        # Several header lines count in order, as one list.
        ("10.1.1.1", ["127.0.0.1", "203.0.113.8"], "203.0.113.8"),
        # An untrusted peer's header is ignored, whatever it says.
        ("198.51.100.9", ["127.0.0.1"], "198.51.100.9"),
        # A garbled hop: the walk stops at the last address a trusted proxy vouched for.
        ("10.1.1.1", ["nonsense, 203.0.113.7"], "203.0.113.7"),
        ("10.1.1.1", ["203.0.113.7, nonsense"], "10.1.1.1"),
        # Ports and IPv6 forms.
        ("192.0.2.1", ["[2001:db8::5]:4711"], "2001:db8::5"),
        ("::1", ["203.0.113.7:5555"], "203.0.113.7"),
        # No header from a trusted proxy (its own health checks): the proxy itself.
        ("10.1.1.1", [], "10.1.1.1"),
    ],
)
def test_the_client_is_the_rightmost_address_no_trusted_proxy_vouches_past(peer, forwarded, client):
    assert client_from_forwarded(peer, forwarded, TRUSTED) == client


def test_nothing_is_believed_without_trusted_proxies():
    assert client_from_forwarded("127.0.0.1", ["203.0.113.7"], ()) == "127.0.0.1"


def test_the_scope_gets_the_client_and_the_scheme_of_the_nearest_proxy():
    scope = {
        "type": "websocket",
        "client": ["10.1.1.1", 5000],
        "headers": [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")],
        "scheme": "ws",
    }
    resolved = resolve(scope, TRUSTED)
    assert resolved["client"] == ["203.0.113.7", 0] and resolved["scheme"] == "wss"
    spoofed = {**scope, "client": ["203.0.113.50", 5000]}
    assert resolve(spoofed, TRUSTED) == spoofed


def test_trusted_proxies_are_validated_with_the_variable_named():
    assert load_config({"RELAY_TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.1"}).trusted_proxies
    with pytest.raises(ConfigError, match="RELAY_TRUSTED_PROXIES"):
        load_config({"RELAY_TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"})
