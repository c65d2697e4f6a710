"""deploy/haproxy.cfg and docker-compose.yml agree with the workers on who the client is and on
how long a slow client may take (HAProxy itself runs in tests/multiprocess/test_edge_security.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CFG = (ROOT / "deploy" / "haproxy.cfg").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def directives() -> list[str]:
    return [line.split("#", 1)[0].strip() for line in CFG.splitlines() if line.split("#", 1)[0]]


def seconds(value: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 0.001}[unit]


def timeout(name: str) -> float:
    found = [d.split()[-1] for d in directives() if d.startswith(f"timeout {name} ")]
    assert len(found) == 1, f"timeout {name}"
    return seconds(found[0])


def serve_flag(name: str) -> float:
    command = SERVICES["worker"]["command"]
    return float(command[command.index(name) + 1])


def test_haproxy_sets_the_forwarded_for_header_instead_of_appending_to_the_client_s():
    lines = directives()
    assert "option forwardfor" not in " ".join(lines)  # it keeps a client-written header
    assert "http-request set-header X-Forwarded-For %[src]" in lines


def test_workers_believe_forwarded_headers_from_the_load_balancer_only():
    lb_address = SERVICES["lb"]["networks"]["default"]["ipv4_address"]
    worker = SERVICES["worker"]
    assert "--proxy-headers" in worker["command"]
    assert worker["environment"]["RELAY_TRUSTED_PROXIES"] == lb_address
    subnet = COMPOSE["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert lb_address.rsplit(".", 1)[0] == subnet.rsplit(".", 1)[0]


def test_haproxy_and_the_workers_cut_slow_and_silent_clients_alike():
    assert timeout("http-request") == serve_flag("--handshake-timeout") == 10
    assert timeout("http-keep-alive") == serve_flag("--first-message-timeout") == 5
    assert timeout("client") <= 60 and timeout("tunnel") >= 3600


def test_a_drained_worker_s_closed_port_sends_connections_to_another_worker():
    lines = directives()
    assert any(re.fullmatch(r"retries [1-9]", line) for line in lines)
    assert "option redispatch 1" in lines
