"""Twilio's side of a call, scripted in-process: the signed voice webhook and a bidirectional
Media Stream (``TwilioStream``) on the relay's ASGI application, for the phone tests."""

from __future__ import annotations

import asyncio
import base64
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
from realtime.models import RealtimeSession
from realtime_simulator.live.codec import AudioFormat, encode_output
from tests.relay.conftest import configure

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

    async def press(self, digit: str) -> None:
        """A key press on the caller's keypad (Twilio's ``dtmf`` message)."""
        await self.send({"event": "dtmf", "streamSid": self.stream_sid,
                         "dtmf": {"track": "inbound_track", "digit": digit}})  # fmt: skip

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

    async def closed(self, timeout: float = 5) -> int:
        """Read until the relay closes the stream (nothing else is expected); its code."""
        with pytest.raises(ConnectionError):
            while True:
                await self.next(timeout)
        assert self.close_code is not None
        await self.ws.send_input({"type": "websocket.disconnect", "code": self.close_code})
        await self.ws.wait(timeout=3)
        return self.close_code

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


async def answered_call_from(caller: str, call_sid: str) -> TwilioStream:
    response = await webhook(call_params(call_sid, caller=caller))
    call = TwilioStream(call_sid)
    await call.open(stream_of(response.content)[1]["relay_token"])
    return call


def webhooks(outcome: str) -> float:
    return REGISTRY.get_sample_value("relay_phone_webhooks_total", {"outcome": outcome}) or 0


def said(twiml: bytes) -> str | None:
    """What a refusal's TwiML has Twilio say before it hangs up (None: no refusal)."""
    root = ET.fromstring(twiml)
    if root.find("Hangup") is None or root.find("Connect") is not None:
        return None
    say = root.find("Say")
    return say.text if say is not None else ""
