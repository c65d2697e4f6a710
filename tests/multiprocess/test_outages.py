"""Outages through real daphne workers: the database going away, a worker draining."""

from __future__ import annotations

import asyncio
import base64
import json
import signal

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.multiprocess.test_edge_security import serve, until
from tests.multiprocess.test_two_workers import admin_client, open_session, wait_rows
from tests.services import postgres_admin

pytestmark = pytest.mark.multiprocess


@pytest.fixture
def postgres_env(deployment, db_templates):
    """The deployment on a PostgreSQL database of its own (migrated, with the superuser), and
    a switch that takes it away."""
    admin = postgres_admin()
    name, deployment.env["DATABASE_URL"] = db_templates.postgres(admin, "relay_outage_", admin=True)

    class Database:
        def down(self) -> None:  # as a crashed or unreachable server looks to the workers
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )

        def up(self) -> None:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')

    try:
        yield Database()
    finally:
        deployment.stop()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


async def first_error(url: str, **kwargs) -> tuple[dict, int | None]:
    ws = await connect(url, **kwargs)
    async with asyncio.timeout(10):
        while True:
            frame = await ws.recv()
            if isinstance(frame, str) and json.loads(frame)["type"] == "error":
                error = json.loads(frame)
                break
    await ws.wait_closed()
    return error, ws.close_code


def basic(name: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Host": "localhost"}


async def test_with_the_database_down_every_client_is_refused_clearly(deployment, postgres_env):
    _, port = serve(deployment, RELAY_USER_DAILY_SECONDS="3600")
    url = f"ws://127.0.0.1:{port}/realtime"
    origin = f"http://127.0.0.1:{port}"
    http = await asyncio.to_thread(admin_client, port)  # logged in (cookie) while it is up
    cookie = {"Cookie": f"sessionid={http.cookies['sessionid']}"}
    ticket_url = f"http://127.0.0.1:{port}/api/realtime/ticket"
    async with httpx.AsyncClient(timeout=10) as client:
        ticket = (await client.post(ticket_url, headers=basic("admin", "admin-pw"))).json()
    ws = await connect(url, origin=origin, additional_headers=cookie)
    await until(ws, "connected")  # (its daily budget summed on PostgreSQL)
    await ws.close()

    postgres_env.down()
    for name, kwargs in {
        "logged in": {"additional_headers": cookie},
        "ticket": {"uri": f"{url}?ticket={ticket['ticket']}"},
        "anonymous": {},
    }.items():
        error, code = await first_error(kwargs.pop("uri", url), origin=origin, **kwargs)
        assert (error["code"], code) == ("registry_unavailable", 1011), name
        assert error["fatal"] is True
    async with httpx.AsyncClient(timeout=10) as client:
        refused = await client.post(ticket_url, headers=basic("admin", "admin-pw"))
        login = await client.post(
            f"http://127.0.0.1:{port}/accounts/login/",
            data={"username": "admin", "password": "admin-pw"},
            headers={"Host": "localhost"},
        )
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert refused.json()["error"]["code"] == "registry_unavailable"
    assert login.status_code in (403, 503)  # CSRF refuses first when it can; never a 500

    postgres_env.up()
    back = await connect(url, origin=origin, additional_headers=cookie)
    await until(back, "connected")
    await back.close()


async def test_new_connections_during_a_drain_get_1012_until_the_port_closes(deployment):
    deployment.env["RELAY_DRAIN_SECONDS"] = "5"
    worker, port = serve(deployment)
    sessions = [await open_session(port) for _ in range(2)]
    wait_rows(deployment.db_path, lambda r: sum(x["status"] == "live" for x in r) == 2)
    outcomes: list[str] = []

    async def knock() -> None:
        while True:
            try:
                error, code = await first_error(
                    f"ws://127.0.0.1:{port}/realtime", open_timeout=5, close_timeout=5
                )
            except OSError:  # ConnectionRefusedError: the port is closed
                outcomes.append("refused")
                return
            except Exception as exc:  # a handshake dropped half-way: what must not happen
                outcomes.append(f"dropped ({type(exc).__name__})")
                return
            outcomes.append(f"{error['code']} {code}")

    worker.send_signal(signal.SIGTERM)
    await asyncio.gather(*(knock() for _ in range(16)))
    assert set(outcomes) <= {"server_restarting 1012", "refused"}, outcomes
    assert outcomes.count("refused") == 16
    for ws in sessions:
        await ws.wait_closed()
        assert ws.close_code == 1012
    assert await asyncio.to_thread(worker.wait, 15) == 0
