"""The session metrics say which edge a session came from (``edge``: ``browser``/``phone``):
a phone call and a browser session, each counted under its own edge, and a phone stream
refused before it became a session."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from tests.phone.fake_twilio import TwilioStream, answered_call, phone_on, ulaw
from tests.relay.conftest import Client, wav_pcm
from tests.waiting import eventually_async

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]

SESSION_METRICS = (
    ("relay_sessions_opened_total", {}),
    ("relay_sessions_closed_total", {"reason": "client_closed"}),
    ("relay_sessions_closed_total", {"reason": "ticket_invalid"}),
    ("relay_active_sessions", {}),
    ("relay_upstream_connect_seconds_count", {}),
    ("relay_reply_latency_seconds_count", {}),
)


def read() -> dict[tuple[str, str, str], float]:
    """Every session metric above, per edge: ``(edge, name, reason)`` → value."""
    return {
        (edge, name, labels.get("reason", "")): REGISTRY.get_sample_value(
            name, {"edge": edge, **labels}
        )
        or 0.0
        for edge in ("browser", "phone")
        for name, labels in SESSION_METRICS
    }


def added(before: dict[tuple[str, str, str], float], edge: str) -> dict[str, float]:
    """What changed under ``edge`` since ``before`` (keys: ``name`` or ``name/reason``)."""
    changed = {}
    for key, value in read().items():
        seen_edge, name, reason = key
        if seen_edge == edge and value != before[key]:
            changed[name + (f"/{reason}" if reason else "")] = value - before[key]
    return changed


def phone_calls() -> float:
    return REGISTRY.get_sample_value("relay_phone_calls_total") or 0.0


async def test_a_phone_call_counts_under_the_phone_edge_and_a_browser_session_under_browser(
    simulator,
):
    phone_on()
    before, calls = read(), phone_calls()
    call = await answered_call()
    await call.speak(ulaw(wav_pcm("hello_24k.wav") + bytes(48 * 1000)))
    await call.until("mark")
    # The answer is timed when it is done.
    await eventually_async(lambda: "relay_reply_latency_seconds_count" in added(before, "phone"))
    assert added(before, "phone")["relay_active_sessions"] == 1
    await call.hang_up()
    await eventually_async(lambda: added(before, "phone").get("relay_active_sessions") is None)
    assert added(before, "phone") == {
        "relay_sessions_opened_total": 1,
        "relay_sessions_closed_total/client_closed": 1,
        "relay_upstream_connect_seconds_count": 1,
        "relay_reply_latency_seconds_count": 1,
    }
    assert added(before, "browser") == {}
    assert phone_calls() == calls + 1

    before = read()
    browser = Client()
    await browser.connect()
    await browser.send_audio(wav_pcm("hello_24k.wav") + bytes(48000))
    await browser.until(action="response_done")
    await browser.close()
    await eventually_async(
        lambda: "relay_sessions_closed_total/client_closed" in added(before, "browser")
    )
    assert added(before, "browser") == {
        "relay_sessions_opened_total": 1,
        "relay_sessions_closed_total/client_closed": 1,
        "relay_upstream_connect_seconds_count": 1,
        "relay_reply_latency_seconds_count": 1,
    }
    assert added(before, "phone") == {}


async def test_a_phone_stream_refused_before_its_session_counts_under_the_phone_edge(simulator):
    phone_on()
    before, calls = read(), phone_calls()
    stream = TwilioStream("CA" + "9" * 32)
    await stream.open("not-a-token")
    assert await stream.closed(timeout=3) == 1008
    assert added(before, "phone") == {
        "relay_sessions_opened_total": 1,
        "relay_sessions_closed_total/ticket_invalid": 1,
    }
    assert added(before, "browser") == {} and phone_calls() == calls
