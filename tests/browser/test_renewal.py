"""The demo page across upstream renewals: with RELAY_UPSTREAM_MAX_SECONDS small, the relay
replaces the upstream session several times; the page never reconnects, shows the renewals,
and "what did I say" gets the earlier words back (the simulator's recall convention)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURES, RelayFactory, suffix
from .test_demo_page import open_page, stats, wait_connected, wait_stat

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]


def say(page: Any, text: str) -> None:
    box = page.get_by_label("Message to the assistant")
    box.fill(text)
    box.press("Enter")
    page.locator(".bubble.user", has_text=text).wait_for()


@pytest.mark.both_apis
def test_the_page_keeps_its_conversation_across_renewals(
    launch: Any,
    relays: RelayFactory,
    simulator: Any,
    upstream_api: str,
    artifacts: Path,
) -> None:
    sim, _ = simulator
    url = relays(upstream_api, "daphne-renewal.log", RELAY_UPSTREAM_MAX_SECONDS="3")
    before = len(sim.connections)
    page = open_page(launch(FIXTURES / "silence_2s_24k.wav"), url)
    wait_connected(page)
    session_id = page.locator("#session-id").inner_text()

    say(page, "my name is Ada")
    page.locator(".bubble.assistant", has_text="You said: my name is Ada").wait_for()
    wait_stat(page, "s.renewals.length >= 2", timeout_ms=60000)  # several upstream sessions
    say(page, "I like green tea")
    page.locator(".bubble.assistant", has_text="You said: I like green tea").wait_for()
    wait_stat(page, "s.renewals.length >= 3", timeout_ms=60000)
    say(page, "What did I say?")
    recall = 'Earlier you said: "my name is Ada", then "I like green tea".'
    page.locator(".bubble.assistant", has_text=recall).wait_for(timeout=30000)

    answers = page.locator(".bubble.assistant").all_inner_texts()
    assert len(answers) == 3  # one bubble per answer, whichever upstream session gave it
    assert "my name is Ada" in answers[0] and "green tea" in answers[1]

    seen = stats(page)
    assert seen["connects"] == 1 and seen["closes"] == []  # the page never reconnected
    assert {r["reason"] for r in seen["renewals"]} == {"max_age"}
    assert page.locator("#session-id").inner_text() == session_id
    shown = page.locator("#upstreams").inner_text()
    assert shown.startswith(f"{seen['renewals'][-1]['upstream']} (") and "on the timer" in shown
    # Each renewal opened a new upstream session with the relay's settings.
    assert len(sim.connections) - before >= len(seen["renewals"]) + 1
    page.screenshot(path=str(artifacts / f"demo-renewal{suffix(upstream_api)}.png"))
