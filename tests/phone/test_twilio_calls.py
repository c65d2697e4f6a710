"""A scripted Twilio call through the phone edge, on the simulator: the signed voice webhook,
its TwiML, the media stream with the caller's μ-law speech, the μ-law answer with marks,
barge-in (``clear`` and a truncation at what the caller heard), refusals, and no leaks."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient
from prometheus_client import REGISTRY
from twilio.request_validator import RequestValidator

from realtime.edge.routing import websocket_urlpatterns
from realtime.extensions.policy import SessionPolicy
from realtime.models import ConversationEntry, RealtimeSession
from realtime.ops import runtime as relay_runtime
from realtime_simulator.live.codec import AudioFormat, encode_output
from tests.relay.conftest import configure, relay_tasks, wav_pcm
from tests.waiting import eventually_async

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]

TOKEN = "twilio-auth-token-for-tests"
PUBLIC = "https://relay.example.com"
CALLER, CALLED = "+447700900123", "+15005550006"
ULAW = AudioFormat("audio/pcmu", 8000)
APPEND = {"realtime": "input_audio_buffer.append", "live": "session.input_audio.append"}


def ulaw(pcm24: bytes) -> bytes:
    """PCM16 24 kHz → G.711 μ-law 8 kHz (the simulator's codec; no audioop)."""
    return encode_output(ULAW, pcm24)


def phone_on(**changes: Any) -> None:
    configure(twilio_auth_token=TOKEN, public_url=PUBLIC, **changes)


def call_params(call_sid: str = "CA" + "1" * 32, caller: str = CALLER) -> dict[str, str]:
    return {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "From": caller, "To": CALLED,
            "CallStatus": "ringing", "Direction": "inbound"}  # fmt: skip


async def webhook(params: dict[str, str], signature: str | None = "sign") -> Any:
    headers = {}
    if signature == "sign":
        signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/twilio/voice", params)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return await AsyncClient().post("/twilio/voice", params, headers=headers)


def stream_of(twiml: bytes) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(twiml)
    stream = root.find("./Connect/Stream")
    assert stream is not None, twiml
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    return stream.get("url") or "", params  # type: ignore[return-value]


class TwilioStream:
    """Twilio's side of a bidirectional Media Stream, scripted."""

    def __init__(self, call_sid: str) -> None:
        self.call_sid = call_sid
        self.stream_sid = "MZ" + "9" * 32
        self.ws = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/twilio/media")
        self.audio = bytearray()  # media received, in order
        self.marks: list[str] = []  # marks received, in order
        self.clears = 0
        self.close_code: int | None = None
        self.seq = 0

    async def send(self, event: dict[str, Any]) -> None:
        self.seq += 1
        await self.ws.send_to(text_data=json.dumps({**event, "sequenceNumber": str(self.seq)}))

    async def open(self, token: str | None) -> None:
        connected, _ = await self.ws.connect()
        assert connected
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        params = {"relay_token": token} if token is not None else {}
        await self.send({
            "event": "start", "streamSid": self.stream_sid,
            "start": {"accountSid": "AC" + "0" * 32, "streamSid": self.stream_sid,
                      "callSid": self.call_sid, "tracks": ["inbound"],
                      "customParameters": params,
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}},
        })  # fmt: skip

    async def speak(self, audio: bytes) -> None:
        for chunk, offset in enumerate(range(0, len(audio), 160), start=1):
            payload = base64.b64encode(audio[offset : offset + 160]).decode()
            await self.send({
                "event": "media", "streamSid": self.stream_sid,
                "media": {"track": "inbound", "chunk": str(chunk),
                          "timestamp": str(offset // 8), "payload": payload},
            })  # fmt: skip

    async def echo_mark(self, name: str) -> None:
        await self.send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        frame = await self.ws.receive_output(timeout)
        if frame["type"] == "websocket.close":
            self.close_code = frame.get("code", 1000)
            raise ConnectionError(f"closed with {self.close_code}")
        event = json.loads(frame["text"])
        assert event["streamSid"] == self.stream_sid
        if event["event"] == "media":
            self.audio += base64.b64decode(event["media"]["payload"])
        elif event["event"] == "mark":
            self.marks.append(event["mark"]["name"])
        elif event["event"] == "clear":
            self.clears += 1
        return event

    async def until(self, kind: str, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                event = await self.next(timeout)
                if event["event"] == kind:
                    return event

    async def hang_up(self) -> None:
        """Twilio's ``stop`` (the caller hung up): the relay ends the session and closes."""
        stop = {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid}
        await self.send({"event": "stop", "streamSid": self.stream_sid, "stop": stop})
        with pytest.raises(ConnectionError):
            while True:
                await self.next(timeout=5)
        assert self.close_code == 1000
        await self.ws.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.ws.wait(timeout=5)


async def answered_call(call_sid: str = "CA" + "1" * 32) -> TwilioStream:
    params = call_params(call_sid)
    response = await webhook(params)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    url, parameters = stream_of(response.content)
    assert url == "wss://relay.example.com/twilio/media"
    call = TwilioStream(call_sid)
    await call.open(parameters["relay_token"])
    return call


async def closed_rows() -> list[RealtimeSession]:
    return await sync_to_async(list)(RealtimeSession.objects.all())


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


def webhooks(outcome: str) -> float:
    return REGISTRY.get_sample_value("relay_phone_webhooks_total", {"outcome": outcome}) or 0


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
    with pytest.raises(ConnectionError):
        await call.next(timeout=3)
    assert call.close_code == 1008 and not call.audio
    assert len(simulator.connections) == before  # no upstream session was opened
    await call.ws.send_input({"type": "websocket.disconnect", "code": 1008})
    await call.ws.wait(timeout=3)
    assert all(row.status == "closed" for row in await closed_rows())


def phone_policy(user: Any, scope: Any) -> SessionPolicy:
    """A deployment's policy: one caller refused, the others get instructions per number."""
    phone = scope.get("relay_phone") or {}
    if phone.get("caller") == "+15550001111":
        return SessionPolicy(allow=False, refusal="This line is closed.")
    return SessionPolicy(instructions=f"You answer the phone for {phone.get('called')}.")


async def test_the_policy_refuses_callers_with_a_short_message_and_sets_instructions(simulator):
    phone_on(session_policy="tests.phone.test_twilio_calls.phone_policy")
    refused = await webhook(call_params(caller="+15550001111"))
    root = ET.fromstring(refused.content)
    assert root.find("Say").text == "This line is closed." and root.find("Hangup") is not None
    assert root.find("Connect") is None
    call = await answered_call()
    await call.speak(ulaw(wav_pcm("hello_24k.wav") + bytes(48 * 800)))
    await call.until("mark")
    record = simulator.connections[-1]
    update = next(e for e in record.received if e["type"] == "session.update")["session"]
    assert update["instructions"] == f"You answer the phone for {CALLED}."
    await call.hang_up()


async def test_keypad_digits_reach_the_model_and_the_record(simulator):
    phone_on()
    call = await answered_call()
    await eventually_async(lambda: simulator.connections)
    await simulator.connections[-1].wait_for("session.update")
    await call.send({"event": "dtmf", "streamSid": call.stream_sid,
                     "dtmf": {"track": "inbound_track", "digit": "5"}})  # fmt: skip
    record = simulator.connections[-1]
    item = await record.wait_for("conversation.item.create", timeout=5)
    assert "pressed 5" in json.dumps(item)
    await call.hang_up()
    [row] = await closed_rows()
    texts = await sync_to_async(list)(
        ConversationEntry.objects.filter(session=row).values_list("text", flat=True)
    )
    assert any("pressed 5" in text for text in texts)


async def test_draining_ends_calls_and_refuses_new_ones(simulator):
    phone_on()
    call = await answered_call()
    await eventually_async(lambda: simulator.connections)
    await simulator.connections[-1].wait_for("session.update")
    runtime = relay_runtime.current()
    assert await runtime.drain(timeout=5) == 1  # what SIGTERM does (realtime/ops/drain.py)
    with pytest.raises(ConnectionError):
        while True:
            await call.next(timeout=3)
    assert call.close_code == 1012
    refused = await webhook(call_params("CA" + "4" * 32))
    assert ET.fromstring(refused.content).find("Hangup") is not None
    await call.ws.send_input({"type": "websocket.disconnect", "code": 1012})
    await call.ws.wait(timeout=3)
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
    with pytest.raises(ConnectionError):
        while True:
            await call.next(timeout=5)
    assert call.close_code == 4000
    await call.ws.send_input({"type": "websocket.disconnect", "code": 4000})
    await call.ws.wait(timeout=3)
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
    root = ET.fromstring(refused.content)
    assert root.find("Connect") is None and root.find("Hangup") is not None
    user = await sync_to_async(get_user_model().objects.create_user)("phone-line")
    call = await answered_call("CA" + "5" * 32)
    await eventually_async(lambda: simulator.connections)
    await simulator.connections[-1].wait_for("session.update")
    await call.hang_up()
    [row] = await closed_rows()
    assert row.user_id == user.pk  # its budgets, limits and tool permissions apply


async def test_a_phone_user_whose_daily_budget_is_spent_is_told_so_before_the_call_connects():
    from django.contrib.auth import get_user_model

    phone_on(phone_user="phone-line", user_daily_tokens=100)
    user = await sync_to_async(get_user_model().objects.create_user)("phone-line")
    await sync_to_async(RealtimeSession.objects.create)(
        user=user, provider="simulator", model="m", worker_id="w:1", input_tokens=150
    )
    refused = await webhook(call_params())
    root = ET.fromstring(refused.content)
    assert "budget" in root.find("Say").text and root.find("Connect") is None


async def test_anonymous_calls_are_limited_per_caller_number(simulator):
    phone_on(max_connects_per_minute=1)
    first = await answered_call("CA" + "6" * 32)
    await eventually_async(lambda: simulator.connections)
    await first.hang_up()
    response = await webhook(call_params("CA" + "7" * 32))  # the same number again
    second = TwilioStream("CA" + "7" * 32)
    await second.open(stream_of(response.content)[1]["relay_token"])
    with pytest.raises(ConnectionError):
        await second.next(timeout=3)
    assert second.close_code == 4006 and not second.audio  # too_many_connects
    await second.ws.send_input({"type": "websocket.disconnect", "code": 4006})
    await second.ws.wait(timeout=3)
    other = await answered_call_from("+447700900999", "CA" + "8" * 32)  # another number
    await eventually_async(lambda: len(simulator.connections) == 2)
    await other.hang_up()


async def answered_call_from(caller: str, call_sid: str) -> TwilioStream:
    response = await webhook(call_params(call_sid, caller=caller))
    call = TwilioStream(call_sid)
    await call.open(stream_of(response.content)[1]["relay_token"])
    return call


async def test_a_configured_greeting_is_said_before_the_stream_connects():
    phone_on(phone_greeting="Hello, you are talking to our assistant.")
    root = ET.fromstring((await webhook(call_params())).content)
    assert [child.tag for child in root] == ["Say", "Connect"]
    assert root.find("Say").text == "Hello, you are talking to our assistant."
