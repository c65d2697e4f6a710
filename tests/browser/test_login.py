"""A relay that requires login, for real (no mock): the page sends the user to log in first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURES, suffix
from .test_demo_page import LAPTOP, open_page, wait_connected

pytestmark = pytest.mark.browser


@pytest.fixture
def login_relay_url(relays: Any, upstream_api: str) -> str:
    """daphne with anonymous use switched off (as with a paid upstream) and one user."""
    return relays(
        upstream_api,
        "daphne-login.log",
        setup=[["createsuperuser", "--noinput", "--username", "pat", "--email", "p@x.io"]],
        RELAY_ALLOW_ANONYMOUS="false",
        DJANGO_SUPERUSER_PASSWORD="pw-for-page",
    )


@pytest.mark.both_apis
def test_the_page_asks_to_log_in_then_connects(
    launch: Any, login_relay_url: str, artifacts: Path, upstream_api: str
) -> None:
    page = open_page(launch(FIXTURES / "silence_2s_24k.wav"), login_relay_url, viewport=LAPTOP)
    notice = page.locator("#notice")
    notice.get_by_role("link", name="Log in").wait_for()
    assert "Log in to use this relay" in notice.inner_text()  # the relay's own message
    page.screenshot(path=str(artifacts / f"demo-login-required{suffix(upstream_api)}.png"))
    notice.get_by_role("link", name="Log in").click()
    page.get_by_label("Username").fill("pat")
    page.get_by_label("Password").fill("pw-for-page")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(login_relay_url + "/")
    wait_connected(page)
    assert "Signed in as" in page.locator(".account").inner_text()
