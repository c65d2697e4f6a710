"""docker-compose.yml, read as Docker would (no engine here), and its commands run for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.multiprocess.conftest import free_port, wait_port
from tests.services import postgres_admin, require_redis

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def env_names_read_by_the_project() -> set[str]:
    names: set[str] = set()
    for path in [ROOT / "relay_site" / "settings.py", *sorted((ROOT / "realtime").glob("*.py"))]:
        text = path.read_text()
        names |= set(re.findall(r"""_(?:text|int|float|url|bool)\(env, "([A-Z0-9_]+)\"""", text))
        names |= set(re.findall(r"""env(?:bool|int|list|secret)\("([A-Z0-9_]+)\"""", text))
        names |= set(re.findall(r"""os\.environ(?:\.get)?[\[(]"([A-Z0-9_]+)\"""", text))
    return names - {"DJANGO_SETTINGS_MODULE"}


def test_the_services_of_a_deployment_are_there():
    assert {"redis", "postgres", "migrate", "worker", "lb"} <= set(SERVICES)
    assert SERVICES["migrate"]["command"][:3] == ["python", "manage.py", "migrate"]
    assert SERVICES["migrate"]["restart"] == "no"


def test_workers_are_scalable_daphne_processes_after_migrations():
    worker = SERVICES["worker"]
    assert worker["command"][:3] == ["python", "manage.py", "serve"]
    assert "--no-migrate" in worker["command"] and "--proxy-headers" in worker["command"]
    assert worker["deploy"]["replicas"] >= 2
    assert "ports" not in worker  # only the load balancer is published
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(worker["healthcheck"]["test"])
    env = worker["environment"]
    assert (
        env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in env["DATABASE_URL"]
    )
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert "DJANGO_SECRET_KEY" in env
    # serve runs one supervised daphne process per core of the container's host.
    assert env["RELAY_WORKERS"] == "${RELAY_WORKERS:-0}"


def test_the_load_balancer_spreads_websockets_over_healthy_workers():
    lb = SERVICES["lb"]
    assert any("haproxy.cfg" in v for v in lb["volumes"])
    cfg = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert re.search(r"server-template \w+ \d+ worker:8080", cfg)
    assert "option httpchk GET /readyz" in cfg
    assert "timeout tunnel" in cfg  # WebSockets outlive plain HTTP timeouts
    assert "balance leastconn" in cfg
    assert "cookie" not in cfg  # no sticky sessions needed


def test_env_example_documents_every_variable_the_project_reads():
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    missing = env_names_read_by_the_project() - documented
    assert not missing, f".env.example lacks {sorted(missing)}"


@pytest.mark.slow
def test_the_compose_commands_run_here_against_postgres_and_redis():
    """What `docker compose up` would run, with the services' hosts mapped to this machine."""
    admin = postgres_admin()
    require_redis()
    database = f"relay_compose_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{database}"')
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "REDIS_CHANNEL_PREFIX": f"compose-{uuid.uuid4().hex[:6]}",
        "DJANGO_SECRET_KEY": "compose-test",
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        # --proxy-headers needs it (the load balancer's address in the compose network).
        "RELAY_TRUSTED_PROXIES": SERVICES["worker"]["environment"]["RELAY_TRUSTED_PROXIES"],
    }
    worker_cmd = ["8080" if arg == "8080" else arg for arg in SERVICES["worker"]["command"]]
    worker_cmd[worker_cmd.index("--port") + 1] = str(port)
    worker_cmd[worker_cmd.index("--host") + 1] = "127.0.0.1"
    proc = None
    try:
        subprocess.run(
            [sys.executable, *SERVICES["migrate"]["command"][1:]],
            cwd=ROOT, env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, *worker_cmd[1:]], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_port(port, proc)
        import httpx

        # a generous deadline: the first request of a fresh worker loads Django and connects
        # to PostgreSQL and Redis, slow on a loaded machine (httpx's default is 5 s)
        ready = httpx.get(
            f"http://127.0.0.1:{port}/readyz", headers={"Host": "localhost"}, timeout=60
        )
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["channel_layer"] == "ok"
    finally:
        if proc is not None:
            proc.terminate()  # serve drains its workers and exits
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()  # its workers follow it (realtime/ops/supervisor.py)
                proc.wait(timeout=10)
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
