"""Who may open a session: paid upstreams need a user; tickets; origins; draining."""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client as HttpClient
from django.utils import timezone

from realtime.kernel.config import load_config
from realtime.models import ConnectTicket, RealtimeSession
from realtime.ops import runtime as relay_runtime
from relay_site.application import build_application
from tests.relay.conftest import configure, use_config

pytestmark = pytest.mark.django_db(transaction=True)


class Peer:
    """A client of the full ASGI stack (origin, auth middleware, ticket middleware)."""

    def __init__(self, path: str = "/realtime", origin: str | None = "http://localhost",
                 cookie: str | None = None) -> None:  # fmt: skip
        headers = []
        if origin is not None:
            headers.append((b"origin", origin.encode()))
        if cookie:
            headers.append((b"cookie", cookie.encode()))
        # The whole stack, served by the test's runtime.
        application = build_application(relay_runtime.current())
        self.ws = WebsocketCommunicator(application, path, headers=headers)

    async def first_text(self) -> dict:
        connected, _ = await self.ws.connect()
        assert connected
        return json.loads(await self.ws.receive_from(timeout=5))

    async def refused(self) -> tuple[dict, int]:
        message = await self.first_text()
        close = await self.ws.receive_output(timeout=5)
        assert close["type"] == "websocket.close"
        await self.ws.disconnect()
        return message, close["code"]


@pytest.fixture
def paid(simulator):
    """OpenAI (a paid upstream) — reached at the simulator, which checks the key."""
    return use_config(
        load_config({"OPENAI_API_KEY": "sk-test-paid", "OPENAI_ENDPOINT": simulator.base_url})
    )


def make_user(name: str = "ann", password: str = "pw"):
    return get_user_model().objects.create_user(name, password=password)


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


async def test_a_paid_upstream_refuses_anonymous_clients_before_any_upstream_call(paid, simulator):
    message, code = await Peer().refused()
    assert message["type"] == "error" and message["code"] == "auth_required"
    assert message["fatal"] is True and "Log in" in message["message"]
    assert code == 1008
    assert simulator.connections == []  # the key was never used


async def test_a_logged_in_user_may_use_a_paid_upstream(paid, simulator):
    await sync_to_async(make_user)()
    http = HttpClient()
    assert await sync_to_async(http.login)(username="ann", password="pw")
    cookie = f"sessionid={http.cookies['sessionid'].value}"
    peer = Peer(cookie=cookie)
    greeting = await peer.first_text()
    assert greeting["action"] == "connected"
    row = await sync_to_async(lambda: RealtimeSession.objects.select_related("user").get())()
    assert row.user.username == "ann"
    assert simulator.connections[-1].headers["authorization"] == "Bearer sk-test-paid"
    await peer.ws.disconnect()


async def test_without_a_session_cookie_a_client_is_anonymous_without_a_database_call(
    paid, monkeypatch
):
    """A connect storm of anonymous clients does not queue for the database thread to find
    out they have no session; a session cookie still goes through channels' lookup."""
    import channels.auth

    looked_up = []

    async def get_user(scope):
        looked_up.append(scope["cookies"])
        return await original(scope)

    original = channels.auth.get_user
    monkeypatch.setattr(channels.auth, "get_user", get_user)
    for cookie in (None, "csrftoken=abc"):
        message, code = await Peer(cookie=cookie).refused()
        assert message["code"] == "auth_required" and code == 1008
    assert looked_up == []
    message, code = await Peer(cookie="sessionid=stale").refused()  # unknown: anonymous
    assert message["code"] == "auth_required" and code == 1008
    assert looked_up == [{"sessionid": "stale"}]


async def test_a_ticket_opens_one_session_once(paid):
    await sync_to_async(make_user)("cli", "secret")
    http = HttpClient()
    response = await sync_to_async(http.post)(
        "/api/realtime/ticket", HTTP_AUTHORIZATION=basic("cli", "secret")
    )
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 30 and body["url"] == f"/realtime?ticket={body['ticket']}"
    assert response["Cache-Control"] == "no-store"
    peer = Peer(body["url"], origin=None)  # a non-browser client: no Origin header
    assert (await peer.first_text())["action"] == "connected"
    await peer.ws.disconnect()
    message, code = await Peer(body["url"], origin=None).refused()
    assert (message["code"], code) == ("ticket_invalid", 1008)


async def test_forged_and_expired_tickets_are_refused(paid):
    user = await sync_to_async(make_user)("exp", "pw")
    message, code = await Peer("/realtime?ticket=abc:def:ghi").refused()
    assert (message["code"], code) == ("ticket_invalid", 1008)

    from realtime.edge.access import issue_ticket

    token = await sync_to_async(issue_ticket)(user=user, ttl=30)
    await sync_to_async(ConnectTicket.objects.update)(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    message, code = await Peer(f"/realtime?ticket={token}").refused()
    assert (message["code"], code) == ("ticket_invalid", 1008)


def test_the_ticket_endpoint_needs_credentials_and_csrf(paid, db):
    make_user("web", "pw")
    anonymous = HttpClient()
    response = anonymous.post("/api/realtime/ticket")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Basic")
    assert anonymous.get("/api/realtime/ticket").status_code == 405
    wrong = anonymous.post("/api/realtime/ticket", HTTP_AUTHORIZATION=basic("web", "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "bad_credentials"
    browser = HttpClient(enforce_csrf_checks=True)
    browser.login(username="web", password="pw")
    assert browser.post("/api/realtime/ticket").status_code == 403  # no CSRF token
    browser.get("/admin/login/")  # sets the CSRF cookie
    token = browser.cookies["csrftoken"].value
    ok = browser.post("/api/realtime/ticket", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200 and ok.json()["ticket"]


@pytest.mark.parametrize(("allow", "provider_env", "admitted"), [
    ("true", "paid", True),
    ("false", "simulator", False),
])  # fmt: skip
async def test_anonymous_access_is_an_explicit_operator_choice(
    simulator, allow, provider_env, admitted
):
    env = {"RELAY_ALLOW_ANONYMOUS": allow, "REALTIME_SIMULATOR_URL": simulator.base_url}
    if provider_env == "paid":
        env |= {"OPENAI_API_KEY": "sk-test", "OPENAI_ENDPOINT": simulator.base_url}
    use_config(load_config(env))
    peer = Peer()
    message = await peer.first_text()
    if admitted:
        assert message["action"] == "connected"
        await peer.ws.disconnect()
    else:
        assert message["code"] == "auth_required"
        await peer.ws.disconnect()


@pytest.mark.usefixtures("relay_config")
@pytest.mark.parametrize(("origin", "allowed"), [
    ("http://localhost", True),
    ("http://127.0.0.1:8080", True),
    ("https://app.example.com", True),  # in RELAY_ALLOWED_ORIGINS
    (None, True),  # not a browser: cannot ride anyone's cookies
    ("https://evil.example", False),
    ("null", False),
])  # fmt: skip
async def test_origins_are_checked_and_a_refusal_is_explained(origin, allowed):
    configure(allowed_origins=("https://app.example.com",))
    peer = Peer(origin=origin)
    if allowed:
        assert (await peer.first_text())["action"] == "connected"
        await peer.ws.disconnect()
    else:
        message, code = await peer.refused()
        assert message["code"] == "origin_not_allowed" and code == 1008
        assert "RELAY_ALLOWED_ORIGINS" in message["message"]


@pytest.mark.usefixtures("relay_config")
async def test_a_draining_worker_turns_new_sessions_away_with_1012(simulator, relay_runtime):
    relay_runtime.draining = True
    message, code = await Peer().refused()
    assert (message["code"], code) == ("server_restarting", 1012)
    assert simulator.connections == []


def test_users_log_in_on_a_page_of_their_own_and_come_back_to_the_demo(db):
    """Not only staff: the demo's login link leads to a plain login page."""
    make_user("plain", "pw")
    http = HttpClient()
    page = http.get("/")
    assert 'href="/accounts/login/?next=/"' in page.content.decode()
    assert http.get("/accounts/login/?next=/").status_code == 200
    response = http.post("/accounts/login/", {"username": "plain", "password": "pw", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert "Signed in as <strong>plain</strong>" in http.get("/").content.decode()


# Issue 25, finding 10: a WebSocket to a path no route serves used to answer 500 and log an
# ERROR traceback each time (Channels' URLRouter raises): a log flood anyone can cause.
@pytest.mark.parametrize("path", ["/nowhere", "/realtime/extra", "/ws", "/admin/", "/%0aX"])
async def test_a_websocket_to_an_unknown_path_is_refused_with_one_info_line(path, caplog):
    # Built first: Django's set-up (re)configures logging, dropping handlers added before.
    application = build_application(relay_runtime.current())
    ws = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost")])
    caplog.set_level(logging.INFO, logger="realtime")
    relay_logger = logging.getLogger("realtime")  # it does not propagate to caplog's root
    relay_logger.addHandler(caplog.handler)
    try:
        connected, _ = await ws.connect()
    finally:
        relay_logger.removeHandler(caplog.handler)
    assert not connected  # a close before accept: HTTP 403 under daphne
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    [line] = [r for r in caplog.records if r.name.startswith("realtime")]
    assert line.levelno == logging.INFO and "unknown path" in line.getMessage()


async def test_a_ticket_sent_to_an_unknown_path_is_not_spent(paid):
    """The refusal comes before authentication: nothing is looked up or redeemed."""
    from realtime.edge.access import issue_ticket

    user = await sync_to_async(make_user)("tick", "pw")
    token = await sync_to_async(issue_ticket)(user=user, ttl=30)
    application = build_application(relay_runtime.current())
    ws = WebsocketCommunicator(application, f"/elsewhere?ticket={token}")
    assert (await ws.connect())[0] is False
    peer = Peer(f"/realtime?ticket={token}", origin=None)
    assert (await peer.first_text())["action"] == "connected"
    await peer.ws.disconnect()
