"""IP networks in settings: ``RELAY_TRUSTED_PROXIES`` and the like, parsed once with the
configuration (``realtime.kernel.config``) and used by the edge (``realtime.edge.proxy``)."""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str, name: str = "RELAY_TRUSTED_PROXIES") -> tuple[Network, ...]:
    """Comma-separated IPs/CIDRs; ValueError naming the variable on a bad item."""
    networks = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(
                f"{name} must list IP addresses or CIDR networks, got {item!r}"
            ) from None
    return tuple(networks)
