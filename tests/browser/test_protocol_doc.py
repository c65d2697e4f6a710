"""docs/protocol.md's "A minimal browser client", run as written in Chromium against the relay."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.dropping_proxy import dropping_proxy

from .conftest import FIXTURES, REPO, write_wav

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

ASSISTANT = re.compile(r"log: assistant: (\S+) (.*)", re.S)
TALK_BUTTON = """() => {
  const button = document.createElement("button");
  button.textContent = "Talk";
  button.onclick = () => startMic();
  document.body.prepend(button);
}"""


def minimal_client() -> str:
    doc = (REPO / "docs" / "protocol.md").read_text()
    section = doc.split("## A minimal browser client", 1)[1]
    match = re.search(r"```js\n(.*?)```", section, re.S)
    assert match, "the section has no js block"
    return match.group(1)


def test_the_documented_minimal_client_works(launch: Any, relay_url: str, tmp_path: Any) -> None:
    """Realtime API only, for time (it also passed on GPT-Live when tried): test_demo_page
    runs connect, typed and spoken turns on both API families."""
    wav = write_wav(tmp_path / "one_turn.wav", [1.0, FIXTURES / "hello_24k.wav", 12.0])
    page = launch(wav).new_context().new_page()
    logs: list[str] = []
    page.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: logs.append(f"pageerror: {e}"))
    # A page of the relay's origin (the block connects to location.host): the demo page
    # without its own script, plus a button to start the microphone with a real click.
    page.route("**/static/realtime/app.js", lambda route: route.abort())
    page.goto(relay_url + "/")
    page.evaluate(TALK_BUTTON)
    page.add_script_tag(content=minimal_client())

    def wait_log(prefix: str) -> list[str]:
        for _ in range(200):  # Playwright delivers console events while the page waits
            found = [line for line in logs if line.startswith(prefix)]
            if found:
                return found
            page.wait_for_timeout(100)
        raise AssertionError(f"no console line starting {prefix!r}: {logs}")

    wait_log("log: connected: You are now connected")
    wait_log("log: assistant: ")
    page.wait_for_function("() => playAt > 3")  # the typed message's spoken answer, queued
    deltas = [ASSISTANT.match(line) for line in logs if line.startswith("log: assistant: ")]
    assert "".join(m.group(2) for m in deltas if m).startswith("You said: Hello, who are you?")
    page.get_by_role("button", name="Talk").click()  # a user gesture starts the microphone
    wait_log("log: you said: Simulated transcript of")
    page.wait_for_function("() => playAt > 6")  # and the spoken turn's answer
    assert not [line for line in logs if "relay error" in line or line.startswith("pageerror")]


def test_the_documented_minimal_client_resumes_after_a_dropped_network(
    launch: Any, relay_url: str, tmp_path: Any
) -> None:
    """The block reconnects with its resume token when the network drops: the same session,
    and the model still has the conversation ("what did I say")."""
    port = int(relay_url.rsplit(":", 1)[1])
    with dropping_proxy(port) as proxy:
        page = launch(FIXTURES / "silence_2s_24k.wav").new_context().new_page()
        logs: list[str] = []
        page.on("console", lambda m: logs.append(f"{m.type}: {m.text}"))
        page.route("**/static/realtime/app.js", lambda route: route.abort())
        page.goto(f"http://127.0.0.1:{proxy.port}/")
        page.add_script_tag(content=minimal_client())
        page.wait_for_function("() => token !== null")  # session_info arrived
        page.wait_for_function("() => playAt > 3")  # the greeting message was answered
        first = page.evaluate("() => token")
        assert proxy.sever() >= 1  # no close frame: 1006
        page.wait_for_function(f"() => token !== null && token !== {first!r}", timeout=30000)
        assert [line for line in logs if line.startswith("log: reconnecting in ")]
        assert [line for line in logs if line.startswith("log: resumed: ")]
        page.evaluate(
            """() => ws.send(JSON.stringify({ type: "user_message", text: "what did I say" }))"""
        )
        recall = 'Earlier you said: "Hello, who are you?"'
        for _ in range(200):
            said = "".join(m.group(2) for line in logs if (m := ASSISTANT.match(line)))
            if recall in said:
                break
            page.wait_for_timeout(100)
        assert recall in said, logs
        assert not [line for line in logs if "relay error" in line or line.startswith("pageerror")]
