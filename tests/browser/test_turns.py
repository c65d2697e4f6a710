"""Taking turns on the demo page: push-to-talk, the live user transcript, typing over an answer.

Each test watches the page's WebSocket frames (Playwright's `framesent`/`framereceived`) and
the simulator's record of what the relay sent upstream, so the order of messages is checked
on the wire, not only in the page's own counters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import eventually

from .conftest import FIXTURES, Wire, running_relay, write_wav
from .test_demo_page import (
    LAPTOP,
    PHONE,
    _new_connection,
    _received,
    stats,
    wait_connected,
    wait_stat,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

HELLO = FIXTURES / "hello_24k.wav"
TRANSCRIPT = re.compile(r"Simulated transcript of (\d+\.\d\d) seconds of speech\.")


@pytest.fixture(scope="module")
def ptt_relay_url(
    simulator: Any, tmp_path_factory: pytest.TempPathFactory, db_templates: Any
) -> Iterator[str]:
    """The relay with turn detection off: the client ends each turn with `commit`."""
    sim, _ = simulator
    tmp = tmp_path_factory.mktemp("ptt-relay")
    with running_relay(
        sim, tmp, db_templates, "daphne-ptt.log", RELAY_TURN_DETECTION="none"
    ) as url:
        yield url


@pytest.fixture
def speech_wav(tmp_path: Path) -> Path:
    """Nearly continuous speech, so any hold of the talk button captures some."""
    return write_wav(tmp_path / "speech.wav", [HELLO, 0.2, HELLO, 0.2, HELLO, 0.2, HELLO])


def open_wired(browser: Any, url: str, **context: Any) -> tuple[Any, Wire]:
    page = browser.new_context(**{"viewport": LAPTOP, **context}).new_page()
    page.on("console", lambda m: print(f"[console.{m.type}] {m.text}"))
    page.on("pageerror", lambda e: print(f"[pageerror] {e}"))
    wire = Wire(page)
    page.goto(url + "/")
    return page, wire


def appended_bytes(record: Any) -> int:
    return sum(e.get("audio_bytes", 0) for e in list(record.received) if "audio_bytes" in e)


def upstream_order(record: Any, *types: str) -> list[str]:
    return [e["type"] for e in list(record.received) if e.get("type") in types]


def hold_until(page: Any, expression: str) -> None:
    """Keep holding (the caller pressed) until the page's stats satisfy `expression`."""
    wait_stat(page, expression, timeout_ms=15000)


def test_push_to_talk_by_touch_on_a_phone(
    launch: Any, ptt_relay_url: str, simulator: Any, speech_wav: Path, artifacts: Path
) -> None:
    """Hold (a real touch) → the fake mic's audio goes out → release → commit → an answer.
    Push-to-talk is Realtime API only: GPT-Live has no manual turns (RELAY_TURN_DETECTION is
    refused with RELAY_UPSTREAM_API=live)."""
    sim, _ = simulator
    before = len(sim.connections)
    page, wire = open_wired(
        launch(speech_wav), ptt_relay_url, viewport=PHONE, has_touch=True, is_mobile=True
    )
    wait_connected(page)
    record = _new_connection(sim, before)
    page.locator("#turn-mode", has_text="Push-to-talk").wait_for()
    assert page.locator("#turn-detection").inner_text().startswith("push-to-talk")
    talk = page.get_by_role("button", name="Hold to talk")
    assert talk.is_visible() and talk.is_enabled()
    assert talk.get_attribute("aria-pressed") == "false"

    box = talk.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    # The first press opens the microphone; then about 1.5 s of speech is sent.
    hold_until(page, "s.samplesSent >= 36000")
    assert talk.get_attribute("aria-pressed") == "true"
    assert "release to send" in page.locator("#status").inner_text()
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    _received(record, "input_audio_buffer.commit")
    sent_samples = stats(page)["samplesSent"]
    assert talk.get_attribute("aria-pressed") == "false"
    assert wire.sent_types() == ["commit"]
    # Exactly the audio sent while held was committed as the turn.
    assert appended_bytes(record) == 2 * sent_samples
    user = page.locator(".bubble.user", has_text=TRANSCRIPT)
    user.wait_for(timeout=20000)
    seconds = float(TRANSCRIPT.search(user.inner_text()).group(1))
    assert abs(seconds - sent_samples / 24000) <= 0.011, (seconds, sent_samples)
    page.locator(".bubble.assistant", has_text="I heard").wait_for(timeout=20000)
    wait_stat(page, "s.playedSamples > 12000 && s.lastUsage !== null")

    # Released: the microphone stays open but nothing more goes out.
    page.wait_for_timeout(400)
    assert stats(page)["samplesSent"] == sent_samples
    assert page.evaluate("() => window.relayDemo.mic.active")
    # No turn detection upstream: the service never announced speech, the page ended the turn.
    assert "speech_started" not in wire.received_kinds()
    assert "input_audio_buffer.speech_started" not in record.sent_types()
    assert page.locator(".bubble.user").count() == 1
    assert page.locator("#notice").is_hidden()
    page.screenshot(path=str(artifacts / "demo-push-to-talk-phone.png"))


def test_push_to_talk_space_bar_interrupts_the_answer(
    launch: Any, ptt_relay_url: str, simulator: Any, speech_wav: Path
) -> None:
    """Space held outside the text box talks; pressed during an answer it cuts the answer
    first with `interrupt` and the exact played_ms, as speech_started does with VAD."""
    sim, _ = simulator
    before = len(sim.connections)
    page, wire = open_wired(launch(speech_wav), ptt_relay_url)
    wait_connected(page)
    record = _new_connection(sim, before)
    page.locator("#turn-mode", has_text="Push-to-talk").wait_for()

    page.get_by_role("button", name="Start microphone").click()  # keeps the focus
    wait_stat(page, "s.maxLevel > 0.3")  # the microphone hears the speech…
    assert stats(page)["framesSent"] == 0  # …but sends nothing until the button is held
    assert page.locator("#status").inner_text() == "Connected — hold to talk"

    page.keyboard.down("Space")
    hold_until(page, "s.samplesSent >= 36000")
    page.keyboard.up("Space")
    assert page.evaluate("() => window.relayDemo.mic.active")  # Space did not click the button
    page.locator(".bubble.assistant", has_text="I heard").wait_for(timeout=20000)
    wait_stat(page, "s.playedSamples > 12000")  # half a second of the answer was heard

    first = stats(page)["samplesSent"]
    page.keyboard.down("Space")
    wait_stat(page, "s.interrupts === 1")
    hold_until(page, f"s.samplesSent >= {first + 24000}")
    page.keyboard.up("Space")

    truncate = _received(record, "conversation.item.truncate")
    report = stats(page)["playbackReports"][-1]
    assert wire.sent_types() == ["commit", "interrupt", "commit"]
    interrupt = wire.sent[1]
    assert interrupt == {"type": "interrupt", **report}
    assert interrupt["item_id"] == truncate["item_id"]
    assert truncate["audio_end_ms"] == interrupt["played_ms"] >= 500
    # The second commit left the page on Space's release: wait for it to reach the upstream.
    eventually(
        lambda: len(upstream_order(record, "input_audio_buffer.commit")) == 2,
        what="the second commit reaches the upstream",
    )
    assert upstream_order(record, "input_audio_buffer.commit", "conversation.item.truncate") == [
        "input_audio_buffer.commit",
        "conversation.item.truncate",
        "input_audio_buffer.commit",
    ]
    page.locator(".bubble.assistant.cut").first.wait_for()
    page.locator(".bubble.user", has_text=TRANSCRIPT).nth(1).wait_for(timeout=20000)
    page.locator(".bubble.assistant", has_text="I heard").nth(1).wait_for(timeout=20000)
    assert "speech_started" not in wire.received_kinds()
    assert stats(page)["commits"] == 2
    assert page.locator("#notice").is_hidden()


# Records every text the user's bubbles show, and whether each was still pending then.
RECORD_USER_TEXTS = """
window.__userTexts = [];
new MutationObserver(() => {
  for (const li of document.querySelectorAll(".bubble.user")) {
    const entry = {id: li.dataset.id || null, text: li.querySelector(".text").textContent,
                   pending: li.classList.contains("pending")};
    const last = window.__userTexts[window.__userTexts.length - 1];
    if (!last || last.text !== entry.text || last.pending !== entry.pending) {
      window.__userTexts.push(entry);
    }
  }
}).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
"""


@pytest.mark.both_apis
def test_live_transcript_grows_before_the_final_text(
    launch: Any, relay_url: str, tmp_path: Path
) -> None:
    wav = write_wav(tmp_path / "one_turn.wav", [1.0, HELLO, 12.0])
    browser = launch(wav)
    context = browser.new_context(viewport=LAPTOP)
    context.add_init_script(RECORD_USER_TEXTS)
    page = context.new_page()
    wire = Wire(page)
    page.goto(relay_url + "/")
    wait_connected(page)
    page.get_by_role("button", name="Start microphone").click()
    user = page.locator(".bubble.user:not(.pending)", has_text=TRANSCRIPT)
    user.wait_for(timeout=20000)
    final = user.locator(".text").inner_text()

    deltas = [m for m in wire.received if m["type"] == "transcription_delta"]
    assert len(deltas) >= 5
    item_id = deltas[0]["id"]
    assert "".join(d["delta"] for d in deltas) == final
    shown = page.evaluate("() => window.__userTexts")
    assert shown[0] == {"id": None, "text": "…", "pending": True}  # speech_started
    growing = [s["text"] for s in shown[1:-1]]
    # Each delta was on screen, in the pending bubble of that item, before the final text.
    assert growing == ["".join(d["delta"] for d in deltas[: n + 1]) for n in range(len(deltas))]
    assert all(s["pending"] and s["id"] == item_id for s in shown[1:-1])
    assert shown[-1] == {"id": item_id, "text": final, "pending": False}
    assert page.locator(".bubble.user").count() == 1


@pytest.mark.both_apis
def test_typing_while_the_answer_plays_interrupts_it_first(
    launch: Any, relay_url: str, simulator: Any, upstream_api: str
) -> None:
    """The answer has finished streaming but is still playing: only the page can stop it."""
    sim, _ = simulator
    before = len(sim.connections)
    page, wire = open_wired(launch(FIXTURES / "silence_2s_24k.wav"), relay_url)
    wait_connected(page)
    record = _new_connection(sim, before)
    box = page.get_by_label("Message to the assistant")
    # A long answer (the simulator's grows with the message): about 11 s of audio, so that
    # more than a second is still unheard when it has all arrived, even on a loaded machine
    # where the simulator streams at little more than real time (twice, when quiet).
    box.fill(
        "Please tell me a long story about a lighthouse keeper, the sea and its storms, the "
        "ships that passed in the night, and the light that kept every one of them safe."
    )
    box.press("Enter")
    # The whole answer has arrived…
    page.wait_for_function(
        "() => window.relayDemo.state.responding === false && window.relayDemo.stats.lastUsage"
    )
    s = stats(page)
    assert 0 < s["playedSamples"] < s["samplesReceived"] - 24000  # …and a second is unheard

    box.fill("Stop, and say something short.")
    box.press("Enter")
    second = page.locator(".bubble.assistant", has_text="You said: Stop, and say something short.")
    second.wait_for()
    wait_stat(page, "s.lastUsage !== null && s.interrupts === 1")

    assert wire.sent_types() == ["user_message", "interrupt", "user_message"]
    interrupt = wire.sent[1]
    report = stats(page)["playbackReports"][-1]
    assert interrupt == {"type": "interrupt", **report}
    if upstream_api == "realtime":
        truncate = _received(record, "conversation.item.truncate")
        assert truncate["item_id"] == interrupt["item_id"]
        assert truncate["audio_end_ms"] == interrupt["played_ms"] > 0
        # Upstream: the cut, then the new message and its answer.
        order = upstream_order(
            record, "conversation.item.truncate", "conversation.item.create", "response.create"
        )
        assert order == [
            "conversation.item.create",
            "response.create",
            "conversation.item.truncate",
            "conversation.item.create",
            "response.create",
        ]
    else:  # no truncate: what was heard goes to the model as silent context, before the text
        assert interrupt["item_id"].startswith("live_a") and interrupt["played_ms"] > 0
        order = upstream_order(record, "session.thinking.append", "session.commentary.append")
        assert order == [
            "session.commentary.append",
            "session.thinking.append",
            "session.commentary.append",
        ]
        note = _received(record, "session.thinking.append")
        assert note["content"].startswith("The user interrupted you; of your last answer they")
    if upstream_api == "realtime":  # marked on `truncated`; GPT-Live's memory is never cut
        page.locator(".bubble.assistant.cut").first.wait_for()
    wait_stat(page, "s.playedSamples > 0 && s.droppedSamples > 0")
    assert "error" not in [m["type"] for m in wire.received]
    assert page.locator("#notice").is_hidden()


def test_typing_while_the_answer_streams_cuts_it_once(
    launch: Any, relay_url: str, simulator: Any
) -> None:
    """Typed while the answer is still arriving: one cut, at the page's figure, no error.
    Realtime API only: GPT-Live cannot be cancelled, the rest of the answer plays as a new one."""
    sim, _ = simulator
    before = len(sim.connections)
    page, wire = open_wired(launch(FIXTURES / "silence_2s_24k.wav"), relay_url)
    wait_connected(page)
    record = _new_connection(sim, before)
    box = page.get_by_label("Message to the assistant")
    box.fill("Please tell me a long story about a lighthouse keeper.")
    box.press("Enter")
    wait_stat(page, "s.playedSamples > 12000")
    assert page.evaluate("() => window.relayDemo.state.responding")  # still streaming

    box.fill("Stop, and say something short.")
    box.press("Enter")
    second = page.locator(".bubble.assistant", has_text="You said: Stop, and say something short.")
    second.wait_for()
    wait_stat(page, "s.lastUsage !== null && s.lastUsage.output_tokens > 0")
    page.wait_for_timeout(300)

    assert wire.sent_types() == ["user_message", "interrupt", "user_message"]
    truncate = _received(record, "conversation.item.truncate")
    assert truncate["audio_end_ms"] == wire.sent[1]["played_ms"] > 0
    assert upstream_order(record, "response.cancel") == ["response.cancel"]
    assert "error" not in [m["type"] for m in wire.received]
    assert page.locator("#notice").is_hidden()
