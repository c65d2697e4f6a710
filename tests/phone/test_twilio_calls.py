"""A scripted Twilio call through the phone edge, on the simulator: the answered webhook's
stream with the caller's μ-law speech, the μ-law answer with marks, barge-in (``clear`` and a
truncation at what the caller heard), streams without a valid token, the policy's per-number
instructions, drain, the admin, the phone user, and no leaks. The webhook alone:
``test_webhook.py``; key presses: ``test_keypad.py``."""

from __future__ import annotations

import html
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from realtime.extensions.policy import SessionPolicy
from realtime.models import ConversationEntry, RealtimeSession
from realtime.ops import runtime as relay_runtime
from tests.phone.fake_twilio import (
    APPEND,
    CALLED,
    CALLER,
    TwilioStream,
    answered_call,
    answered_call_from,
    call_params,
    closed_rows,
    phone_on,
    said,
    stream_of,
    ulaw,
    webhook,
)
from tests.relay.conftest import relay_tasks, wav_pcm
from tests.waiting import eventually_async

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]


@pytest.mark.both_apis
async def test_a_call_is_answered_in_mulaw_with_marks_and_barge_in_clears_and_truncates(
    simulator, upstream_api
):
    phone_on(playback_report_wait_ms=1000)
    call = await answered_call()
    hello = ulaw(wav_pcm("hello_24k.wav") + bytes(48 * 1000))
    await call.speak(hello)
    first_mark = await call.until("mark")
    record = simulator.connections[-1]
    # The upstream session was asked for μ-law both ways and got the caller's bytes unchanged.
    if upstream_api == "realtime":
        update = next(e for e in record.received if e["type"] == "session.update")["session"]
        assert update["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        assert update["audio"]["output"]["format"] == {"type": "audio/pcmu"}
    else:
        start = next(e for e in record.received if e["type"] == "session.start")["session"]
        assert start["audio"]["format"] == {"type": "audio/pcmu", "rate": 8000}
    appended = sum(e["audio_bytes"] for e in record.received if e["type"] == APPEND[upstream_api])
    assert appended == len(hello)
    # The answer: 20 ms media frames of μ-law, a mark every 100 ms of it.
    item_id, _, sent = first_mark["mark"]["name"].rpartition("/")
    assert int(sent) == 800 and len(call.audio) >= 800
    # The caller "plays" 200 ms of it (Twilio echoes the first two marks), then talks over it.
    while len(call.marks) < 2:
        await call.until("mark")
    await call.echo_mark(call.marks[0])
    await call.echo_mark(call.marks[1])
    await call.speak(ulaw(wav_pcm("hello_24k.wav")))
    await call.until("clear")
    if upstream_api == "realtime":
        truncate = await record.wait_for("conversation.item.truncate", timeout=5)
        assert (truncate["item_id"], truncate["audio_end_ms"]) == (item_id.split("/")[0], 200)
    else:

        def told() -> dict[str, Any] | None:
            notes = [e for e in record.received if e["type"] == "session.thinking.append"]
            return next((e for e in notes if "interrupted" in e["content"]), None)

        heard = await eventually_async(told)
        assert "heard only" in heard["content"] or "before hearing" in heard["content"]
    await call.hang_up()
    [row] = await closed_rows()
    assert row.status == "closed" and row.origin == "phone:twilio"
    assert row.client_addr == "+4477*****123" and CALLER not in row.user_agent
    assert row.audio_ms_in >= len(hello) // 8 - 40  # milliseconds, not μ-law bytes
    kinds = await sync_to_async(list)(
        ConversationEntry.objects.filter(session=row).values_list("kind", flat=True)
    )
    assert "phone_call" in kinds and "spoken" in kinds
    await eventually_async(lambda: not relay_tasks())


@pytest.mark.parametrize("case", ["no_token", "forged", "spent", "another_call"])
async def test_a_stream_without_a_valid_token_is_closed_before_any_upstream(simulator, case):
    phone_on()
    response = await webhook(call_params("CA" + "2" * 32))
    issued = stream_of(response.content)[1]["relay_token"]
    call_sid = "CA" + "2" * 32
    token: str | None = {"no_token": None, "forged": issued[:-4] + "AAAA"}.get(case, issued)
    if case == "spent":
        first = TwilioStream(call_sid)
        await first.open(issued)  # the first use opens the call
        await first.hang_up()
    elif case == "another_call":
        call_sid = "CA" + "3" * 32  # a token issued for CA222… presented by another call
    before = len(simulator.connections)
    call = TwilioStream(call_sid)
    await call.open(token)
    assert await call.closed(timeout=3) == 1008 and not call.audio
    assert len(simulator.connections) == before  # no upstream session was opened
    assert all(row.status == "closed" for row in await closed_rows())


async def test_draining_ends_calls_and_refuses_new_ones(simulator):
    phone_on()
    call = await answered_call()
    await eventually_async(lambda: simulator.connections)
    await simulator.connections[-1].wait_for("session.update")
    runtime = relay_runtime.current()
    assert await runtime.drain(timeout=5) == 1  # what SIGTERM does (realtime/ops/drain.py)
    assert await call.closed(timeout=3) == 1012
    refused = await webhook(call_params("CA" + "4" * 32))
    assert "not available" in (said(refused.content) or "")
    [row] = await closed_rows()
    assert row.status == "closed"


async def test_a_call_shows_in_the_admin_with_its_caller_masked_and_can_be_terminated(
    simulator, admin_user
):
    from django.test import Client as PageClient

    from realtime.ops import control

    phone_on()
    call = await answered_call()
    await call.speak(ulaw(wav_pcm("hello_24k.wav") + bytes(48 * 1000)))
    await call.until("mark")
    live = await eventually_async(
        sync_to_async(lambda: RealtimeSession.objects.filter(status="live").first()),
        what="a live row",
    )
    pages = PageClient()
    await sync_to_async(pages.force_login)(admin_user)
    listing = await sync_to_async(pages.get)("/admin/realtime/realtimesession/")
    assert (
        "phone +4477*****123" in listing.content.decode() and CALLER not in listing.content.decode()
    )
    await control.send_terminate([live.channel_name], by="admin")
    assert await call.closed() == 4000
    [row] = await closed_rows()
    assert (row.close_reason, row.ended_by) == ("terminated", "admin")
    detail = await sync_to_async(pages.get)(f"/admin/realtime/realtimesession/{row.id}/change/")
    text = html.unescape(detail.content.decode())
    spoken = await sync_to_async(list)(
        ConversationEntry.objects.filter(session=row, kind="spoken").values_list("text", flat=True)
    )
    assert spoken and all(words in text for words in spoken)  # the caller's transcript
    assert "twilio call from +4477*****123" in text and CALLER not in text


async def test_calls_run_as_the_phone_user_and_a_missing_one_refuses_calls(simulator):
    from django.contrib.auth import get_user_model

    phone_on(phone_user="phone-line")
    refused = await webhook(call_params())
    assert "not available" in (said(refused.content) or "")
    user = await sync_to_async(get_user_model().objects.create_user)("phone-line")
    call = await answered_call("CA" + "5" * 32)
    await eventually_async(lambda: simulator.connections)
    await simulator.connections[-1].wait_for("session.update")
    await call.hang_up()
    [row] = await closed_rows()
    assert row.user_id == user.pk  # its budgets, limits and tool permissions apply


def phone_policy(user: Any, scope: Any) -> SessionPolicy:
    """A deployment's policy: one caller refused, the others get instructions per number."""
    phone = scope.get("relay_phone") or {}
    if phone.get("caller") == "+15550001111":
        return SessionPolicy(allow=False, refusal="This line is closed.")
    return SessionPolicy(instructions=f"You answer the phone for {phone.get('called')}.")


async def test_the_policy_refuses_callers_with_a_short_message_and_sets_instructions(simulator):
    phone_on(session_policy="tests.phone.test_twilio_calls.phone_policy")
    refused = await webhook(call_params(caller="+15550001111"))
    assert said(refused.content) == "This line is closed."
    call = await answered_call()
    await call.speak(ulaw(wav_pcm("hello_24k.wav") + bytes(48 * 800)))
    await call.until("mark")
    record = simulator.connections[-1]
    update = next(e for e in record.received if e["type"] == "session.update")["session"]
    assert update["instructions"] == f"You answer the phone for {CALLED}."
    await call.hang_up()


async def test_two_calls_answered_at_once_from_one_number_over_its_limit_the_second_is_closed(
    simulator,
):
    """The webhook says a limit's refusal ahead (test_webhook.py); two calls it answered
    before either stream started race for the last connect: the loser's stream is closed with
    the limit's code (too_many_connects: 4006) before any upstream session, the winner goes on,
    and another number is not limited by them."""
    phone_on(max_connects_per_minute=1)
    first_sid, second_sid = "CA" + "6" * 32, "CA" + "7" * 32
    tokens = [
        stream_of((await webhook(call_params(sid))).content)[1]["relay_token"]
        for sid in (first_sid, second_sid)
    ]
    first, second = TwilioStream(first_sid), TwilioStream(second_sid)
    await first.open(tokens[0])
    await eventually_async(lambda: simulator.connections)
    await second.open(tokens[1])
    assert await second.closed(timeout=3) == 4006 and not second.audio
    assert len(simulator.connections) == 1
    other = await answered_call_from("+447700900999", "CA" + "8" * 32)
    await eventually_async(lambda: len(simulator.connections) == 2)
    await other.hang_up()
    await first.hang_up()
    rows = await closed_rows()
    assert sorted(row.close_reason for row in rows) == ["client_closed", "client_closed"]
