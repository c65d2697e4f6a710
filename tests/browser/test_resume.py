"""The demo page keeps its conversation when its socket is lost: it reconnects by itself with
the session's resume token, shows "reconnecting…" then "resumed", keeps the transcript on
screen, and the model still recalls what was said (the simulator's "what did I say"). Through
a proxy whose connections can be cut (a dropped network), and on ``serve --workers 2`` with
Redis through a SIGTERM and a SIGKILL of the session's worker.

That a token never opens another user's session is the relay's to enforce, for any client:
tests/relay/test_resume.py (``test_another_users_token_never_opens_the_session``)."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.dropping_proxy import dropping_proxy
from tests.multiprocess.conftest import (  # noqa: F401 - fixtures for the two-worker test
    deployment,
    redis_url,
    simulator_process,
)
from tests.multiprocess.test_serve_workers import children
from tests.multiprocess.test_two_workers import rows, wait_rows

from .conftest import FIXTURES, RelayFactory
from .test_demo_page import LAPTOP, open_page, stats, wait_connected, wait_stat
from .test_renewal import say

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

RECALL = 'Earlier you said: "my name is Ada"'


RELAY_SOCKET = re.compile(r"/realtime(\?.*)?$")  # with or without ?resume=…


def open_mocked(launch: Any, relay_url: str, on_connect: Any) -> tuple[Any, list[Any]]:
    """The demo page with its relay socket answered by ``on_connect(ws, n)`` (every connect,
    resumes included)."""
    page = launch(FIXTURES / "silence_2s_24k.wav").new_context(viewport=LAPTOP).new_page()
    sockets: list[Any] = []

    def handler(ws: Any) -> None:
        sockets.append(ws)
        on_connect(ws, len(sockets))

    page.route_web_socket(RELAY_SOCKET, handler)
    page.goto(relay_url + "/")
    return page, sockets


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def recall_count(page: Any) -> int:
    return page.locator(".bubble.assistant", has_text=RECALL).count()


def ask_recall(page: Any) -> None:
    """ "what did I say": one more answer that quotes the first message."""
    before = recall_count(page)
    asked = page.locator(".bubble.user", has_text="what did I say")
    count = asked.count()
    box = page.get_by_label("Message to the assistant")
    box.fill("what did I say")
    box.press("Enter")
    asked.nth(count).wait_for()
    page.wait_for_function(
        "([text, n]) => [...document.querySelectorAll('.bubble.assistant')]"
        ".filter((li) => li.textContent.includes(text)).length > n",
        arg=[RECALL, before],
        timeout=30000,
    )


def wait_resumed(page: Any, n: int, timeout_ms: int = 60000) -> dict[str, Any]:
    """Until the page's ``n``th resume attempt was answered; that answer."""
    wait_stat(page, f"s.resumes.length >= {n}", timeout_ms=timeout_ms)
    answer = stats(page)["resumes"][n - 1]
    assert answer["resumed"] is True, answer
    return answer


def a_conversation(page: Any) -> str:
    """Connected, "my name is Ada" answered; the session id."""
    wait_connected(page)
    say(page, "my name is Ada")
    page.locator(".bubble.assistant", has_text="You said: my name is Ada").wait_for()
    return page.locator("#session-id").inner_text()


def test_the_page_resumes_after_a_dropped_network(
    launch: Any, relays: RelayFactory, artifacts: Path
) -> None:
    url = relays("realtime", "daphne-resume.log")
    with dropping_proxy(port_of(url)) as proxy:
        page = open_page(launch(FIXTURES / "silence_2s_24k.wav"), f"http://127.0.0.1:{proxy.port}")
        session_id = a_conversation(page)
        page.get_by_role("button", name="Start microphone").click()  # the audio goes on too
        wait_stat(page, "s.framesSent > 50")

        assert proxy.sever() >= 1  # no close frame: the browser sees 1006
        resumed = wait_resumed(page, 1)
        assert resumed["session_id"] == session_id
        seen = stats(page)
        assert "reconnecting" in seen["connections"] and seen["connections"][-1] == "open"
        assert seen["closes"][0]["code"] == 1006 and seen["closes"][0]["final"] is False
        root = page.locator("#relay-demo")
        assert root.get_attribute("data-resumed") == "true"
        assert root.get_attribute("data-connection") == "live"
        assert "Resumed" in page.locator("#notice").inner_text()
        page.locator(".bubble.system", has_text="Reconnected — the conversation goes on").wait_for()
        assert page.locator("#session-id").inner_text() == session_id
        # The transcript stayed on screen (no second greeting: the same conversation).
        assert page.locator(".bubble.user", has_text="my name is Ada").count() == 1
        greetings = page.locator(".bubble.system", has_text="connected to the realtime relay")
        assert greetings.count() == 1

        ask_recall(page)
        frames = stats(page)["framesSent"]
        wait_stat(page, f"s.framesSent > {frames + 50}")  # the microphone streams again
        page.screenshot(path=str(artifacts / "demo-resumed.png"))


def test_a_resume_the_relay_refuses_is_a_new_session_with_the_transcript_kept(
    launch: Any, relay_url: str
) -> None:
    """The relay answers a resume with a new session (``resumed:false`` + resume_unavailable):
    the page says so and keeps what was on screen. Mocked relay (Playwright routing)."""
    urls: list[str] = []

    def relay(ws: Any, n: int) -> None:
        urls.append(ws.url)
        ws.send('{"type":"control","action":"connected","greeting":"Hi from the mock."}')
        ws.send(
            f'{{"type":"control","action":"session_info","session_id":"s-{n}","provider":"Mock",'
            f'"api":"realtime","turn_detection":"server_vad","resume_token":"tok-{n}",'
            '"resumed":false}'
        )
        if n == 1:
            ws.send('{"type":"text_delta","id":"item_1-0","delta":"An earlier answer."}')
            ws.close(code=1012, reason="restarting")
        else:
            ws.send(
                '{"type":"error","code":"resume_unavailable","message":"the resume token is '
                'invalid, expired or already used","fatal":false}'
            )

    page, _ = open_mocked(launch, relay_url, relay)
    wait_stat(page, "s.resumes.length >= 1", timeout_ms=15000)
    page.locator("#notice", has_text="could not be resumed: the resume token is invalid").wait_for()
    assert re.search(r"[?&]resume=tok-1$", urls[1]), urls
    assert "resume=" not in urls[0]
    assert page.locator("#relay-demo").get_attribute("data-resumed") == "false"
    assert page.locator(".bubble.assistant", has_text="An earlier answer.").count() == 1
    page.locator(".bubble.system", has_text="New session — the earlier conversation").wait_for()
    assert page.locator("#session-id").inner_text() == "s-2"


def test_resumed_elsewhere_does_not_reconnect(launch: Any, relay_url: str) -> None:
    def relay(ws: Any, n: int) -> None:
        ws.send('{"type":"control","action":"connected","greeting":"Hi from the mock."}')
        ws.send(
            '{"type":"control","action":"session_info","session_id":"s","provider":"Mock",'
            '"api":"realtime","turn_detection":"server_vad","resume_token":"t","resumed":false}'
        )
        ws.send(
            '{"type":"error","code":"session_resumed_elsewhere","message":"This session was '
            'resumed on another connection.","fatal":true}'
        )
        ws.close(code=4015)

    page, sockets = open_mocked(launch, relay_url, relay)
    page.locator("#status", has_text="resumed on another connection").wait_for()
    page.wait_for_timeout(2500)  # longer than the first back-off steps
    assert len(sockets) == 1
    assert stats(page)["closes"][0]["final"] is True
    assert page.locator("#relay-demo").get_attribute("data-connection") == "closed"


# ---------------------------------------------------------------------------------------------
# Two workers behind one port (serve --workers 2, Redis): a dropped network, a SIGTERM and a
# SIGKILL of the session's worker; the conversation survives all three.
# ---------------------------------------------------------------------------------------------


def worker_of(db_path: Path, session_id: str, resumes: int) -> int:
    """The pid of the worker serving the session once its ``resumes``th resume is live."""
    hexid = session_id.replace("-", "")

    def serving(found: list[dict]) -> bool:
        return any(
            str(r["id"]).replace("-", "") == hexid
            and r["status"] == "live"
            and r["resumes"] == resumes
            for r in found
        )

    found = wait_rows(db_path, serving, timeout=20)
    [row] = [r for r in found if str(r["id"]).replace("-", "") == hexid]
    return int(row["worker_id"].rsplit(":", 1)[1])


@pytest.mark.multiprocess  # and Redis
def test_the_page_keeps_its_conversation_on_two_workers(
    launch: Any,
    deployment: Any,  # noqa: F811 - the fixture imported above
    artifacts: Path,
) -> None:
    deployment.env["RELAY_DRAIN_SECONDS"] = "5"
    parent, port = deployment.start_worker(RELAY_WORKERS="2")
    try:
        deployment.listening(port, 2)
        with dropping_proxy(port) as proxy:
            browser = launch(FIXTURES / "silence_2s_24k.wav")
            page = open_page(browser, f"http://127.0.0.1:{proxy.port}")
            session_id = a_conversation(page)
            db = deployment.db_path

            # 1. The network drops (no close frame).
            proxy.sever()
            wait_resumed(page, 1)
            ask_recall(page)

            # 2. Its worker is stopped (SIGTERM: it drains, the page hears 1012).
            pid = worker_of(db, session_id, resumes=1)
            os.kill(pid, signal.SIGTERM)
            wait_resumed(page, 2)
            assert stats(page)["closes"][-1]["code"] == 1012
            assert worker_of(db, session_id, resumes=2) != pid
            ask_recall(page)

            # 3. Its worker is killed (SIGKILL: rebuilt from what it last wrote to Redis).
            pid = worker_of(db, session_id, resumes=2)
            os.kill(pid, signal.SIGKILL)
            wait_resumed(page, 3)
            assert stats(page)["closes"][-1]["code"] == 1006
            assert worker_of(db, session_id, resumes=3) != pid
            ask_recall(page)

            assert page.locator("#session-id").inner_text() == session_id
            assert page.locator(".bubble.user", has_text="my name is Ada").count() == 1
            assert recall_count(page) == 3
            assert len(rows(db)) == 1  # one session all along
            page.screenshot(path=str(artifacts / "demo-resumed-two-workers.png"))
    finally:
        for pid in children(parent.pid):
            os.kill(pid, signal.SIGKILL)
