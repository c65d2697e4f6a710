"""The demo page in real headless Chromium against the relay (daphne) and the simulator."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURES, REPO, write_wav

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


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


def wait_connected(page: Any) -> None:
    page.locator(".bubble.system", has_text="connected to the realtime relay").wait_for()
    page.locator("#provider", has_text="Simulator").wait_for()


def test_voice_turn(launch: Any, relay_url: str, artifacts: Path, tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "one_turn.wav", [1.0, FIXTURES / "hello_24k.wav", 12.0])
    page = open_page(launch(wav), relay_url)
    wait_connected(page)
    status = page.locator("#status")
    assert "Connected" in status.inner_text()

    page.get_by_role("button", name="Start microphone").click()
    page.locator("#status", has_text="Listening").wait_for()
    wait_stat(page, "s.framesSent > 10")

    user = page.locator(".bubble.user", has_text="Simulated transcript")
    user.wait_for(timeout=20000)
    assistant = page.locator(".bubble.assistant", has_text="This is the simulator speaking")
    assistant.wait_for(timeout=20000)
    wait_stat(page, "s.playedSamples > 24000 && s.lastUsage !== null")
    s = stats(page)
    assert s["captureRate"] in (16000, 24000, 44100, 48000, 96000)
    assert s["samplesReceived"] >= s["playedSamples"] > 24000
    assert s["lastLatencyMs"] is not None and 0 < s["lastLatencyMs"] < 5000
    assert s["lastUsage"]["total_tokens"] > 0
    assert page.locator("#latency").inner_text().endswith("ms")
    assert "this turn" in page.locator("#usage").inner_text()
    # one bubble per item: one user bubble for the utterance, one assistant bubble for the reply
    assert page.locator(".bubble.user").count() == 1
    assert page.locator(".bubble.assistant").count() == 1

    page.screenshot(path=str(artifacts / "demo-laptop.png"))
    shutil.copy(artifacts / "demo-laptop.png", REPO / "docs" / "screenshot.png")
