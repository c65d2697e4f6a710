"""The demo page in real headless Chromium against the relay (daphne) and the simulator."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURES, REPO, Wire, suffix, write_wav

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# session_info.turn_detection: who ends the user's turns.
TURN_DETECTION = {"realtime": "server_vad", "live": "model"}


def open_page(browser: Any, url: str, viewport: dict[str, int] = LAPTOP) -> Any:
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.on("console", lambda m: print(f"[console.{m.type}] {m.text}"))
    page.on("pageerror", lambda e: print(f"[pageerror] {e}"))
    page.goto(url + "/")
    return page


def stats(page: Any) -> dict[str, Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.relayDemo.stats))")


def wait_stat(page: Any, expression: str, timeout_ms: int = 30000) -> None:
    page.wait_for_function(
        f"() => {{ const s = window.relayDemo.stats; return {expression}; }}", timeout=timeout_ms
    )


def wait_wire(page: Any, wire: Wire, predicate: Any, timeout_ms: int = 20000) -> dict[str, Any]:
    """The first message the page received that satisfies `predicate`, waiting for it."""
    for _ in range(timeout_ms // 100):
        found = [m for m in list(wire.received) if predicate(m)]
        if found:
            return found[0]
        page.wait_for_timeout(100)  # Playwright delivers frame events while the page waits
    raise AssertionError(f"no such message: {wire.received_kinds()}")


def wait_connected(page: Any) -> None:
    page.locator(".bubble.system", has_text="connected to the realtime relay").wait_for()
    page.locator("#provider", has_text="Simulator").wait_for()


@pytest.mark.both_apis
def test_voice_turn(
    launch: Any, relay_url: str, artifacts: Path, tmp_path: Path, upstream_api: str
) -> None:
    wav = write_wav(tmp_path / "one_turn.wav", [1.0, FIXTURES / "hello_24k.wav", 12.0])
    page = launch(wav).new_context(viewport=LAPTOP).new_page()
    page.on("console", lambda m: print(f"[console.{m.type}] {m.text}"))
    page.on("pageerror", lambda e: print(f"[pageerror] {e}"))
    wire = Wire(page)
    page.goto(relay_url + "/")
    wait_connected(page)
    status = page.locator("#status")
    assert "Connected" in status.inner_text()
    info = next(m for m in wire.received if m.get("action") == "session_info")
    assert info["api"] == upstream_api
    assert info["turn_detection"] == TURN_DETECTION[upstream_api]

    page.get_by_role("button", name="Start microphone").click()
    page.locator("#status", has_text="Listening").wait_for()
    wait_stat(page, "s.framesSent > 10")
    # Whatever rate the (fake) device runs at, the page sends 24 kHz: ~24,000 samples/s.
    first, t0 = stats(page)["samplesSent"], time.monotonic()
    page.wait_for_timeout(2000)
    rate = (stats(page)["samplesSent"] - first) / (time.monotonic() - t0)
    assert 21000 < rate < 27000, rate
    assert stats(page)["maxLevel"] > 0.3  # the level meter moved with the speech

    user = page.locator(".bubble.user", has_text="Simulated transcript")
    user.wait_for(timeout=20000)
    assistant = page.locator(".bubble.assistant", has_text="This is the simulator speaking")
    assistant.wait_for(timeout=20000)
    wait_stat(page, "s.playedSamples > 24000 && s.lastUsage !== null")
    s = stats(page)
    assert s["statesSeen"][:4] == ["connecting", "connected", "listening", "speaking"]
    assert s["captureRate"] in (16000, 24000, 44100, 48000, 96000)
    assert s["samplesReceived"] >= s["playedSamples"] > 24000
    assert s["lastLatencyMs"] is not None and 0 < s["lastLatencyMs"] < 5000
    # The relay's figures for the answer (response_done's latency_ms), shown and in data-*.
    figures = [m for m in wire.received if m.get("action") == "response_done"][-1]["latency_ms"]
    latency = page.locator("#latency")
    assert latency.get_attribute("data-first-audio") == str(figures["first_audio"])
    assert latency.get_attribute("data-relay") == str(figures["relay"])
    assert f"{figures['first_audio']} ms to first audio" in latency.inner_text()
    assert 0 <= figures["relay"] <= figures["first_audio"]
    assert "this turn" in page.locator("#usage").inner_text()
    if upstream_api == "realtime":
        assert s["lastUsage"]["total_tokens"] > 0
    else:  # GPT-Live bills by duration: no tokens for the voice, the seconds come instead
        assert s["lastUsage"]["total_tokens"] == 0
        wait_wire(page, wire, lambda m: m.get("action") == "usage")
        usage = [m for m in wire.received if m.get("action") == "usage"]
        assert usage[0]["seconds"] > 0 and set(usage[0]) == {"type", "action", "seconds"}
    # one bubble per item: one user bubble for the utterance, one assistant bubble for the reply
    assert page.locator(".bubble.user").count() == 1
    assert page.locator(".bubble.assistant").count() == 1
    assert "error" not in [m["type"] for m in wire.received]

    print("capture rate", s["captureRate"], "latency", s["lastLatencyMs"])
    page.screenshot(path=str(artifacts / f"demo-laptop{suffix(upstream_api)}.png"))
    if upstream_api == "realtime" and os.environ.get("RELAY_UPDATE_SCREENSHOT") == "1":
        shutil.copy(artifacts / "demo-laptop.png", REPO / "docs" / "screenshot.png")


def _new_connection(sim: Any, before: int, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(sim.connections) > before:
            return sim.connections[before]
        time.sleep(0.05)
    raise AssertionError("the relay never connected to the simulator")


def _received(record: Any, event_type: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in list(record.received):
            if event.get("type") == event_type:
                return event
        time.sleep(0.05)
    types = [e.get("type") for e in record.received if e.get("type") != "input_audio_buffer.append"]
    raise AssertionError(f"the simulator never received {event_type}; got {types}")


INTERRUPTED = re.compile(r"^The user interrupted you; of your last answer they heard only: (.*)\.$")


def heard_words(record: Any, played_ms: int) -> str:
    """GPT-Live: the words of the simulator's first answer that start within its first
    `played_ms` of audio (the output transcript's timing), as the relay tells the model."""
    deltas = [e for e in list(record.sent) if e.get("type") == "session.output_transcript.delta"]
    first = deltas[0]["start_ms"]
    return "".join(d["delta"] for d in deltas if d["start_ms"] - first < played_ms).strip()


@pytest.mark.both_apis
def test_barge_in_truncates_at_what_was_played(
    launch: Any,
    relay_url: str,
    simulator: Any,
    artifacts: Path,
    tmp_path: Path,
    upstream_api: str,
) -> None:
    """Talking over the answer stops its playback at once; the model is told what was heard:
    a truncate at the played ms (Realtime API), silent context with the played words
    (GPT-Live, which has no truncate)."""
    sim, _ = simulator
    hello = FIXTURES / "hello_24k.wav"
    # The second utterance starts ~1.5 s after the first ends: during the ~3.8 s reply.
    wav = write_wav(tmp_path / "barge_in.wav", [1.0, hello, 1.5, hello, 14.0])
    before = len(sim.connections)
    page = open_page(launch(wav), relay_url)
    wait_connected(page)
    record = _new_connection(sim, before)

    page.get_by_role("button", name="Start microphone").click()
    wait_stat(page, "s.bargeIns >= 1")
    s = stats(page)
    report = s["playbackReports"][0]
    if upstream_api == "realtime":
        truncate = _received(record, "conversation.item.truncate")
        item_id = truncate["item_id"]
        sent_ms = (
            sum(
                e.get("delta_bytes", 0)
                for e in list(record.sent)
                if e.get("type") == "response.output_audio.delta" and e.get("item_id") == item_id
            )
            // 48
        )
        assert 0 < truncate["audio_end_ms"] <= sent_ms
        # The relay truncated at exactly what the page reported it had played.
        assert report["item_id"] == item_id
        assert truncate["audio_end_ms"] == report["played_ms"]
        assert truncate["audio_end_ms"] < sent_ms  # the answer really was cut short
    else:
        note = _received(record, "session.thinking.append")
        assert note["delegation_id"] is None
        match = INTERRUPTED.match(note["content"])
        assert match, note["content"]
        heard = heard_words(record, report["played_ms"])
        # The relay told the model exactly the words the page reported it had played…
        assert match.group(1) == repr(heard)
        answer = record.spoken[0]["text"]  # the simulator's first answer, all of it
        assert heard and answer.startswith(heard) and heard != answer  # cut short
        assert report["item_id"].startswith("live_a")  # the relay's synthetic answer id
    # Playback stopped at once: the rest of the interrupted item was dropped, not played.
    assert s["droppedSamples"] > 0
    page.locator(".bubble.assistant.cut").first.wait_for()
    # The second utterance is answered too.
    page.locator(".bubble.user", has_text="Simulated transcript").nth(1).wait_for(timeout=20000)
    page.locator(".bubble.assistant", has_text="This is the simulator speaking").nth(1).wait_for(
        timeout=20000
    )
    page.screenshot(path=str(artifacts / f"demo-barge-in{suffix(upstream_api)}.png"))


@pytest.mark.both_apis
def test_text_chat_on_a_phone(
    launch: Any, relay_url: str, simulator: Any, artifacts: Path, upstream_api: str
) -> None:
    sim, _ = simulator
    before = len(sim.connections)
    page = open_page(launch(FIXTURES / "silence_2s_24k.wav"), relay_url, viewport=PHONE)
    wait_connected(page)
    record = _new_connection(sim, before)

    box = page.get_by_label("Message to the assistant")
    box.click()
    box.fill("What can you do?")
    box.press("Enter")
    page.locator(".bubble.user", has_text="What can you do?").wait_for()
    page.locator(".bubble.assistant", has_text="You said: What can you do?").wait_for()
    if upstream_api == "realtime":
        created = _received(record, "conversation.item.create")
        assert created["item"]["content"][0]["text"] == "What can you do?"
        _received(record, "response.create")
    else:  # GPT-Live: speakable context that asks for a reply (docs/gpt-live.md)
        commentary = _received(record, "session.commentary.append")
        assert commentary["content"].startswith('The user typed: "What can you do?". Reply')
    assert box.input_value() == ""
    wait_stat(page, "s.lastUsage !== null && s.playedSamples > 0")
    assert page.locator(".bubble.assistant").count() == 1
    page.screenshot(path=str(artifacts / f"demo-phone{suffix(upstream_api)}.png"))


def test_escape_key_interrupts_the_answer(launch: Any, relay_url: str, simulator: Any) -> None:
    """Keyboard only: type, Enter to send, Escape to stop; the relay truncates at the report.
    Realtime API only: GPT-Live cannot be stopped, the rest of its answer plays as a new one."""
    sim, _ = simulator
    before = len(sim.connections)
    page = open_page(launch(FIXTURES / "silence_2s_24k.wav"), relay_url)
    wait_connected(page)
    record = _new_connection(sim, before)
    page.keyboard.press("Tab")  # the first control is focusable from the keyboard
    page.get_by_label("Message to the assistant").focus()
    page.keyboard.type("Please tell me a long story about a lighthouse keeper.")
    page.keyboard.press("Enter")
    wait_stat(page, "s.playedSamples > 12000")  # half a second of the answer was heard
    assert page.get_by_role("button", name="Stop answer").is_enabled()
    page.keyboard.press("Escape")
    truncate = _received(record, "conversation.item.truncate")
    wait_stat(page, "s.interrupts === 1")
    reports = stats(page)["playbackReports"]
    assert reports and reports[-1]["item_id"] == truncate["item_id"]
    assert truncate["audio_end_ms"] == reports[-1]["played_ms"] >= 500
    page.locator(".bubble.assistant.cut").wait_for()
    page.locator("#status", has_text="Connected").wait_for()


# ---------------------------------------------------------------------------------------------
# Closing and reconnecting: the relay's side is mocked with Playwright's WebSocket routing.
# ---------------------------------------------------------------------------------------------

CONNECTED = '{"type":"control","action":"connected","greeting":"Hi from the mock."}'


def _mock_relay(page: Any, on_connect: Any) -> list[Any]:
    sockets: list[Any] = []

    def handler(ws: Any) -> None:
        sockets.append(ws)
        on_connect(ws, len(sockets))

    page.route_web_socket("**/realtime", handler)
    return sockets


def _open_mocked(launch: Any, relay_url: str, on_connect: Any) -> tuple[Any, list[Any]]:
    browser = launch(FIXTURES / "silence_2s_24k.wav")
    page = browser.new_context(viewport=LAPTOP).new_page()
    sockets = _mock_relay(page, on_connect)
    page.goto(relay_url + "/")
    return page, sockets


def test_auth_required_shows_login_link_and_does_not_reconnect(
    launch: Any, relay_url: str, artifacts: Path
) -> None:
    def refuse(ws: Any, n: int) -> None:
        ws.send('{"type":"error","code":"auth_required","message":"Log in to talk.","fatal":true}')
        ws.close(code=1008, reason="auth required")

    page, sockets = _open_mocked(launch, relay_url, refuse)
    link = page.locator("#notice").get_by_role("link", name="Log in")
    link.wait_for()
    assert link.get_attribute("href") == "/accounts/login/?next=/"
    assert "Log in to talk." in page.locator("#notice").inner_text()
    page.locator("#status", has_text="Closed").wait_for()
    page.wait_for_timeout(2500)  # longer than the first backoff steps
    assert len(sockets) == 1
    page.screenshot(path=str(artifacts / "demo-auth-required.png"))


@pytest.mark.parametrize(
    ("close_code", "message"),
    [(4000, "An administrator ended this session."), (4003, "Too many sessions for this user.")],
)
def test_no_reconnect_after_admin_end_or_session_limit(
    launch: Any, relay_url: str, close_code: int, message: str
) -> None:
    def end(ws: Any, n: int) -> None:
        ws.send(CONNECTED)
        ws.send(f'{{"type":"error","code":"session_ended","message":"{message}","fatal":true}}')
        ws.close(code=close_code)

    page, sockets = _open_mocked(launch, relay_url, end)
    page.locator("#status", has_text=message).wait_for()
    assert message in page.locator("#notice").inner_text()
    page.wait_for_timeout(2500)
    assert len(sockets) == 1
    assert page.get_by_role("button", name="Reconnect").is_visible()
    closes = stats(page)["closes"]
    assert closes == [{"code": close_code, "reason": message, "final": True}]


def test_reconnects_with_backoff_after_a_drop(launch: Any, relay_url: str) -> None:
    def flaky(ws: Any, n: int) -> None:
        ws.send(CONNECTED)
        if n == 1:
            ws.close(code=1012, reason="restarting")

    page, sockets = _open_mocked(launch, relay_url, flaky)
    wait_stat(page, "s.connects >= 2", timeout_ms=10000)
    assert len(sockets) == 2
    page.locator("#status", has_text="Connected").wait_for()
    assert stats(page)["closes"][0]["final"] is False


def test_insecure_context_explains_the_microphone(launch: Any, relay_url: str) -> None:
    """Served from a non-localhost http:// origin the page is not a secure context."""
    page = launch(FIXTURES / "silence_2s_24k.wav").new_context().new_page()
    origin = "http://voice-demo.test"
    page.route(
        f"{origin}/**",
        lambda route: route.fulfill(
            response=route.fetch(url=route.request.url.replace(origin, relay_url))
        ),
    )
    page.goto(origin + "/")
    notice = page.locator("#mic-notice")
    notice.wait_for()
    assert "secure" in notice.inner_text()
    assert page.get_by_role("button", name="Start microphone").is_disabled()


def test_denied_microphone_is_explained(
    playwright_driver: Any, chromium_path: Path, relay_url: str
) -> None:
    from .conftest import CHROMIUM_FLAGS

    flags = [f for f in CHROMIUM_FLAGS if f != "--use-fake-ui-for-media-stream"]
    browser = playwright_driver.chromium.launch(
        executable_path=str(chromium_path), headless=True, args=flags
    )
    try:
        page = open_page(browser, relay_url)
        wait_connected(page)
        page.get_by_role("button", name="Start microphone").click()
        page.locator("#mic-notice", has_text="denied").wait_for(timeout=10000)
        assert page.get_by_role("button", name="Start microphone").is_enabled()
    finally:
        browser.close()
