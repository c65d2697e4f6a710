"""The voice webhook (``POST /twilio/voice``) alone: signatures, the phone edge off, the
greeting, and callers refused before any stream — each hears why (``<Say>…</Say><Hangup/>``)
and the refusal is counted by its outcome (``relay_phone_webhooks_total``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from twilio.request_validator import RequestValidator

from realtime.edge import twilio_voice
from realtime.edge.routing import websocket_urlpatterns
from realtime.models import RealtimeSession
from tests.phone.fake_twilio import (
    PUBLIC,
    TOKEN,
    answered_call,
    call_params,
    phone_on,
    said,
    webhook,
    webhooks,
)
from tests.relay.conftest import configure
from tests.waiting import eventually_async

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]


async def test_unsigned_and_forged_webhooks_get_403_and_no_stream():
    phone_on()
    params = call_params()
    forbidden, answered = webhooks("forbidden"), webhooks("answered")
    assert (await webhook(params, signature=None)).status_code == 403
    assert (await webhook(params, signature="Zm9yZ2Vk")).status_code == 403
    forged = RequestValidator("another-token").compute_signature(f"{PUBLIC}/twilio/voice", params)
    assert (await webhook(params, signature=forged)).status_code == 403
    tampered = dict(params, From="+15550001111")  # signed for another caller
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/twilio/voice", params)
    assert (await webhook(tampered, signature=signature)).status_code == 403
    assert (await webhook(params)).status_code == 200
    assert (webhooks("forbidden"), webhooks("answered")) == (forbidden + 4, answered + 1)


async def test_without_an_auth_token_the_phone_edge_is_off():
    configure(twilio_auth_token="")
    assert (await webhook(call_params())).status_code == 404
    ws = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/twilio/media")
    connected, _ = await ws.connect()
    assert not connected


async def test_a_configured_greeting_is_said_before_the_stream_connects():
    phone_on(phone_greeting="Hello, you are talking to our assistant.")
    root = ET.fromstring((await webhook(call_params())).content)
    assert [child.tag for child in root] == ["Say", "Connect"]
    assert root.find("Say").text == "Hello, you are talking to our assistant."


async def phone_line(**changes: object) -> object:
    """Calls run as the phone user ``phone-line`` (RELAY_PHONE_USER), with these settings."""
    phone_on(phone_user="phone-line", **changes)
    return await sync_to_async(get_user_model().objects.create_user)("phone-line")


async def test_a_phone_user_whose_daily_budget_is_spent_is_told_so_before_the_call_connects():
    user = await phone_line(user_daily_tokens=100)
    await sync_to_async(RealtimeSession.objects.create)(
        user=user, provider="simulator", model="m", worker_id="w:1", input_tokens=150
    )
    limited = webhooks("limited")
    assert said((await webhook(call_params())).content) == twilio_voice.SPENT
    assert webhooks("limited") == limited + 1


async def test_a_caller_over_the_connects_a_minute_hears_so_instead_of_silence(simulator):
    """Anonymous calls: connects a minute per caller number. The first call is answered; the
    same number again within the minute is told to call back (no stream, no token spent), and
    another number is answered."""
    phone_on(max_connects_per_minute=1)
    first = await answered_call("CA" + "6" * 32)
    await eventually_async(lambda: simulator.connections)
    await first.hang_up()
    limited, answered = webhooks("limited"), webhooks("answered")
    again = await webhook(call_params("CA" + "7" * 32))
    assert said(again.content) == twilio_voice.CALLED_TOO_OFTEN
    other = await webhook(call_params("CA" + "8" * 32, caller="+447700900999"))
    assert ET.fromstring(other.content).find("./Connect/Stream") is not None
    assert (webhooks("limited"), webhooks("answered")) == (limited + 1, answered + 1)
    assert len(simulator.connections) == 1  # the refused caller cost nothing upstream


@pytest.mark.parametrize("limit", ["the phone user's sessions", "the relay's sessions"])
async def test_callers_over_a_session_limit_hear_the_lines_are_busy(simulator, limit):
    """Calls as RELAY_PHONE_USER share its limits, and all calls the relay's: with one session
    allowed, a second caller while the first is on the line hears that the lines are busy;
    once the first hangs up, calls are answered again."""
    if limit == "the phone user's sessions":
        await phone_line(max_sessions_per_user=1)
    else:
        phone_on(max_sessions_total=1)
    first = await answered_call("CA" + "6" * 32)
    await eventually_async(lambda: simulator.connections)
    await simulator.connections[-1].wait_for("session.update")
    busy = await webhook(call_params("CA" + "7" * 32, caller="+447700900999"))
    assert said(busy.content) == twilio_voice.BUSY
    await first.hang_up()
    again = await webhook(call_params("CA" + "8" * 32, caller="+447700900999"))
    assert ET.fromstring(again.content).find("./Connect/Stream") is not None
