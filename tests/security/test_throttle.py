"""Password guessing and ticket floods end in 429 with Retry-After (per username, per address)."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tests.relay.conftest import configure

pytestmark = pytest.mark.django_db


def basic(name: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


@pytest.fixture
def victim():
    return get_user_model().objects.create_user("victim", password="right-password")


def ticket(client: Client, name: str, password: str, addr: str = "198.51.100.1"):
    return client.post(
        "/api/realtime/ticket", HTTP_AUTHORIZATION=basic(name, password), REMOTE_ADDR=addr
    )


def test_forty_wrong_passwords_on_the_ticket_endpoint_end_in_429(victim):
    client = Client()
    statuses = [ticket(client, "victim", f"guess-{n}").status_code for n in range(40)]
    assert statuses[:10] == [401] * 10
    assert set(statuses[10:]) == {429}
    refused = ticket(client, "victim", "guess-41")
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert 0 < int(refused["Retry-After"]) <= 900
    # Locked means the password is not even checked: the right one is refused too.
    assert ticket(client, "victim", "right-password").status_code == 429
    # From another address, another username is untouched.
    get_user_model().objects.create_user("other", password="pw")
    assert ticket(client, "other", "pw", addr="198.51.100.2").status_code == 200


def test_the_login_page_is_throttled_per_username(victim):
    client = Client()
    form = {"username": "victim", "password": "nope"}
    statuses = [
        client.post("/accounts/login/", form, REMOTE_ADDR=f"203.0.113.{n}").status_code
        for n in range(12)
    ]
    assert statuses[:10] == [200] * 10  # the form again, with an error
    assert statuses[10:] == [429, 429]  # from any address: the username is locked
    admin = client.post("/admin/login/", form, REMOTE_ADDR="203.0.113.99")
    assert admin.status_code == 429 and int(admin["Retry-After"]) > 0


def test_one_address_guessing_many_usernames_is_throttled():
    configure(login_failures_per_address=5)
    client = Client()
    statuses = [ticket(client, f"user{n}", "x").status_code for n in range(7)]
    assert statuses == [401] * 5 + [429] * 2


def test_a_successful_login_clears_the_username_s_failures(victim):
    configure(login_failures_per_user=3)
    client = Client()
    for _ in range(2):
        assert ticket(client, "victim", "wrong").status_code == 401
    assert ticket(client, "victim", "right-password").status_code == 200
    for _ in range(3):
        assert ticket(client, "victim", "wrong", addr="198.51.100.7").status_code == 401
    assert ticket(client, "victim", "wrong", addr="198.51.100.7").status_code == 429


def test_connect_tickets_are_limited_per_user_and_per_address(victim):
    configure(tickets_per_minute=3)
    client = Client()
    statuses = [ticket(client, "victim", "right-password").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = ticket(client, "victim", "right-password", addr="198.51.100.9")
    assert (
        refused.status_code == 429
        and "connect tickets a minute" in refused.json()["error"]["message"]
    )
    assert 0 < int(refused["Retry-After"]) <= 60


def test_limits_set_to_zero_are_off(victim):
    configure(login_failures_per_user=0, login_failures_per_address=0)
    client = Client()
    assert {ticket(client, "victim", "wrong").status_code for _ in range(15)} == {401}


# Issue 25, finding 3: the lockout is keyed on the identity Django's login resolves, not the
# bytes typed. Fullwidth and case variants of a name are the same account to the login form
# (NFKC), so they must share one lockout.
LOOK_ALIKES = ["ｖｉｃｔｉｍ", "VICTIM", "Ｖｉｃｔｉｍ", " victim "]


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_look_alike_usernames_share_one_lockout_on_the_login_pages(victim, path):
    client = Client()
    for n in range(10):
        name = LOOK_ALIKES[n % len(LOOK_ALIKES)] if n % 2 else "victim"
        form = {"username": name, "password": f"guess-{n}"}
        assert client.post(path, form, REMOTE_ADDR=f"203.0.113.{n}").status_code == 200
    for name in ["victim", *LOOK_ALIKES]:
        right = {"username": name, "password": "right-password"}
        refused = client.post(path, right, REMOTE_ADDR="203.0.113.200")
        assert refused.status_code == 429, name
    # Before the lockout, the fullwidth name does log in as the victim: it is one identity.
    other = get_user_model().objects.create_user("bob", password="pw")
    fresh = Client()
    fresh.post("/accounts/login/", {"username": "ｂｏｂ", "password": "pw"})
    assert fresh.session.get("_auth_user_id") == str(other.pk)


def test_look_alike_usernames_share_one_lockout_on_the_ticket_endpoint(victim):
    client = Client()
    for n in range(10):
        name = "ｖｉｃｔｉｍ" if n % 2 else "VICTIM"
        assert ticket(client, name, f"guess-{n}", addr=f"198.51.100.{n}").status_code == 401
    for name in ["victim", *LOOK_ALIKES]:
        assert ticket(client, name, "right-password", addr="198.51.100.200").status_code == 429
    # The ticket endpoint resolves a name as the login form does (NFKC): same account.
    get_user_model().objects.create_user("bob", password="pw")
    assert ticket(client, "ｂｏｂ", "pw", addr="198.51.100.201").status_code == 200
