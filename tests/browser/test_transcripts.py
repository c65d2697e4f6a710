"""A conversation on the demo page — typed, spoken, with a tool call — is on the session's
admin page within a heartbeat, in order, and on the user's own conversations page."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from realtime.ops.logs import _BASE64_RUN

from .conftest import ARTIFACTS, FIXTURES, REPO, running_relay
from .test_demo_page import LAPTOP, wait_connected

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

HEARTBEAT_S = 1.0


@pytest.fixture(scope="module")
def records_relay(
    simulator: Any, tmp_path_factory: pytest.TempPathFactory, db_templates: Any
) -> Iterator[str]:
    """The relay with the example tools, a 1 s heartbeat and a staff user."""
    sim, _ = simulator
    tmp = tmp_path_factory.mktemp("records-relay")
    env = {"RELAY_TOOLS": "examples", "RELAY_HEARTBEAT_SECONDS": str(HEARTBEAT_S)}
    with running_relay(sim, tmp, db_templates, "daphne-records.log", **env) as url:
        subprocess.run(
            [sys.executable, "manage.py", "shell", "-v", "0", "-c",
             "from django.contrib.auth import get_user_model; "
             "get_user_model().objects.create_superuser('rita', 'r@x.io', 'pw-for-records')"],
            cwd=REPO, check=True, timeout=60,
            env={"DATABASE_URL": f"sqlite:///{tmp / 'relay.sqlite3'}", "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        yield url
    log = (ARTIFACTS / "daphne-records.log").read_text(errors="replace")
    assert not _BASE64_RUN.search(log), "audio in the relay's log"


def mic_wav(path: Path) -> Path:
    """1 s of silence, the spoken request (48 kHz, as a device delivers it), 40 s of silence."""
    with wave.open(str(FIXTURES / "what_time_48k.wav")) as w:
        speech, rate = w.readframes(w.getnframes()), w.getframerate()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(2 * rate) + speech + bytes(2 * rate * 40))
    return path


def transcript(page: Any) -> list[tuple[str, str, str]]:
    return page.locator(".transcript .entry").evaluate_all(
        "items => items.map(li => [li.dataset.role, li.dataset.kind,"
        " li.querySelector('.text').innerText])"
    )


def test_a_demo_conversation_appears_on_its_admin_page_within_a_heartbeat(
    launch: Any, records_relay: str, tmp_path: Path, artifacts: Path
) -> None:
    browser = launch(mic_wav(tmp_path / "mic.wav"))
    page = browser.new_context(viewport=LAPTOP).new_page()
    page.goto(f"{records_relay}/accounts/login/?next=/")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("pw-for-records")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(records_relay + "/")
    wait_connected(page)
    session_id = page.locator("#session-id").inner_text()
    assert re.fullmatch(r"[0-9a-f-]{36}", session_id)

    box = page.get_by_label("Message to the assistant")
    box.fill("hello there")
    box.press("Enter")
    page.locator(".bubble.assistant:not(.pending)", has_text="You said: hello there").wait_for()
    page.get_by_role("button", name="Start microphone").click()
    page.locator(".bubble.user", has_text="What time is it").wait_for(timeout=30000)
    page.locator('.tool-call[data-status="done"]', has_text="get_current_time").wait_for()
    answer = page.locator(
        ".bubble.assistant:not(.pending)", has_text="The get_current_time function returned"
    )
    answer.wait_for(timeout=30000)
    shown_at = time.monotonic()

    admin = page.context.new_page()  # the same browser, signed in as staff
    url = f"{records_relay}/admin/realtime/realtimesession/{session_id}/change/"
    while True:
        admin.goto(url)
        entries = transcript(admin)
        # Written with the next heartbeat (1 s); the bound is generous for a loaded machine
        # (timings are the bench's business, not a test's).
        if len(entries) >= 5 or time.monotonic() - shown_at > HEARTBEAT_S + 15.0:
            break
        admin.wait_for_timeout(200)
    assert [(role, kind) for role, kind, _ in entries] == [
        ("user", "typed"),
        ("assistant", "answer"),
        ("user", "spoken"),
        ("tool", "call"),
        ("assistant", "answer"),
    ], entries
    assert entries[0][2] == "hello there"
    assert entries[1][2].startswith("You said: hello there.")
    assert entries[2][2] == "What time is it, use get current time."
    assert entries[3][2].startswith("get_current_time · done · ")
    assert entries[4][2].startswith("The get_current_time function returned")
    assert "This session is live" in admin.locator("#conversation").inner_text()
    admin.screenshot(path=str(artifacts / "admin-conversation.png"), full_page=True)

    # The user's own page lists it too (leaving the demo page ended the session, which is
    # recorded), and its JSON export carries the same entries.
    page.goto(f"{records_relay}/conversations/")
    page.screenshot(path=str(artifacts / "my-conversations.png"))
    page.get_by_role("link", name=re.compile(r"UTC$")).first.click()
    page.screenshot(path=str(artifacts / "my-conversation.png"))
    mine = transcript(page)
    assert mine[:5] == entries
    assert mine[5][:2] == ["session", "ended"] and mine[5][2].startswith("ended: client_closed")
    response = page.request.get(f"{records_relay}/conversations/{session_id}.json")
    exported = response.json()["sessions"][0]["entries"]
    assert [e["text"] for e in exported][:3] == [e[2] for e in entries[:3]]
