"""A relay that requires login, for real (no mock): the page sends the user to log in first."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.multiprocess.conftest import free_port, wait_port

from .conftest import FIXTURES, PROVIDER_ENV, REPO
from .test_demo_page import LAPTOP, open_page, wait_connected

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def login_relay_url(simulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """daphne with anonymous use switched off (as with a paid upstream) and one user."""
    sim, _ = simulator
    tmp = tmp_path_factory.mktemp("login-relay")
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp / 'relay.sqlite3'}",
        REALTIME_SIMULATOR_URL=sim.base_url,
        RELAY_ALLOW_ANONYMOUS="false",
        DJANGO_SUPERUSER_PASSWORD="pw-for-page",
    )
    for args in (
        ["migrate", "--noinput", "-v", "0"],
        ["createsuperuser", "--noinput", "--username", "pat", "--email", "p@x.io"],
    ):
        subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "relay_site.asgi:application"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait(10)


def test_the_page_asks_to_log_in_then_connects(
    launch: Any, login_relay_url: str, artifacts: Path
) -> None:
    page = open_page(launch(FIXTURES / "silence_2s_24k.wav"), login_relay_url, viewport=LAPTOP)
    notice = page.locator("#notice")
    notice.get_by_role("link", name="Log in").wait_for()
    assert "Log in to use this relay" in notice.inner_text()  # the relay's own message
    page.screenshot(path=str(artifacts / "demo-login-required.png"))
    notice.get_by_role("link", name="Log in").click()
    page.get_by_label("Username").fill("pat")
    page.get_by_label("Password").fill("pw-for-page")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(login_relay_url + "/")
    wait_connected(page)
    assert "Signed in as" in page.locator(".account").inner_text()
