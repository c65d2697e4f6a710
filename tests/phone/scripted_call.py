"""A scripted Twilio call against a running relay over real sockets (what Twilio would do):
the signed webhook over HTTP, then the media stream over a WebSocket, the caller's speech from a
WAV fixture in μ-law, the answer with its marks, the caller talking over it, ``clear``, a key
press, the hang-up; then the phone edge's session metrics (from loopback) and a second call
from the same number (refused, with what the caller hears, when the connects a minute are 1).

    python -m tests.phone.scripted_call http://127.0.0.1:8080 AUTH_TOKEN [--public URL]

Prints one line a step and what it measured; exits non-zero when a step fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
import urllib.parse
import urllib.request
import wave
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from twilio.request_validator import RequestValidator
from websockets.asyncio.client import connect

from realtime_simulator.live.codec import AudioFormat, encode_output

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ULAW = AudioFormat("audio/pcmu", 8000)


def fixture_ulaw(name: str, silence_ms: int = 0) -> bytes:
    with wave.open(str(FIXTURES / name)) as w:
        pcm = w.readframes(w.getnframes())
    return encode_output(ULAW, pcm + bytes(48 * silence_ms))


def webhook(
    base: str, public: str, token: str, call_sid: str, sign: bool = True
) -> tuple[int, bytes]:
    params = {
        "CallSid": call_sid,
        "AccountSid": "AC" + "0" * 32,
        "From": "+447700900123",
        "To": "+15005550006",
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    signature = RequestValidator(token).compute_signature(f"{public}/twilio/voice", params)
    request = urllib.request.Request(
        f"{base}/twilio/voice",
        data=urllib.parse.urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature if sign else "forged"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def phone_session_metrics(base: str) -> list[str]:
    """The phone edge's sessions opened and closed, from the relay's /metrics (loopback)."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        scraped = response.read().decode()
    wanted = ("relay_sessions_opened_total{", "relay_sessions_closed_total{")
    return [line for line in scraped.splitlines()
            if line.startswith(wanted) and 'edge="phone"' in line]  # fmt: skip


async def call(base: str, public: str, token: str) -> int:
    status, _ = webhook(base, public, token, "CA" + "f" * 32, sign=False)
    print(f"forged webhook: HTTP {status}")
    if status != 403:
        return 1
    call_sid = "CA" + "e" * 32
    status, body = webhook(base, public, token, call_sid)
    stream = ET.fromstring(body).find("./Connect/Stream")
    assert stream is not None
    stream_token = stream.find("Parameter").get("value")  # type: ignore[union-attr]
    print(f"signed webhook: HTTP {status}, stream url {stream.get('url')}")
    ws_url = base.replace("http", "ws", 1) + "/twilio/media"
    sid = "MZ" + "e" * 32
    async with connect(ws_url) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(
            json.dumps(
                {
                    "event": "start",
                    "streamSid": sid,
                    "start": {
                        "streamSid": sid,
                        "callSid": call_sid,
                        "customParameters": {"relay_token": stream_token},
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                    },
                }
            )
        )
        speech = fixture_ulaw("hello_24k.wav", silence_ms=1000)
        received: list[tuple[float, dict]] = []
        arrived = asyncio.Event()

        async def read() -> None:  # what the relay sends, timed as it arrives
            async for text in ws:
                received.append((time.monotonic(), json.loads(text)))
                arrived.set()

        async def until(done: Callable[[], bool]) -> None:
            while not done():
                arrived.clear()
                await arrived.wait()

        reader = asyncio.create_task(read())
        started = time.monotonic()
        for offset in range(0, len(speech), 160):  # in real time, as a phone line sends it
            payload = base64.b64encode(speech[offset : offset + 160]).decode()
            media = {"track": "inbound", "payload": payload}
            await ws.send(json.dumps({"event": "media", "streamSid": sid, "media": media}))
            await asyncio.sleep(max(0, started + (offset + 160) / 8000 - time.monotonic()))
        voiced_end = started + (len(speech) - 8000) / 8000  # before the second of silence
        async with asyncio.timeout(15):
            await until(lambda: sum(e["event"] == "mark" for _, e in received) >= 3)
        first_audio = next(t for t, e in received if e["event"] == "media")
        audio = sum(len(base64.b64decode(e["media"]["payload"])) for _, e in received
                    if e["event"] == "media")  # fmt: skip
        marks = [e["mark"]["name"] for _, e in received if e["event"] == "mark"]
        print(
            f"answer: first audio {1000 * (first_audio - voiced_end):.0f} ms after the caller "
            f"stopped talking; {audio} bytes of μ-law so far, marks {marks[:3]}"
        )
        for name in marks[:2]:  # the caller heard 200 ms
            await ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": name}}))
        barge = fixture_ulaw("hello_24k.wav")
        for offset in range(0, len(barge), 160):
            payload = base64.b64encode(barge[offset : offset + 160]).decode()
            await ws.send(
                json.dumps(
                    {
                        "event": "media",
                        "streamSid": sid,
                        "media": {"track": "inbound", "payload": payload},
                    }
                )
            )
        async with asyncio.timeout(10):
            await until(lambda: any(e["event"] == "clear" for _, e in received))
        print("barge-in: clear received")
        await ws.send(json.dumps({"event": "dtmf", "streamSid": sid, "dtmf": {"digit": "5"}}))
        print("keypad: pressed 5")
        await ws.send(
            json.dumps({"event": "stop", "streamSid": sid, "stop": {"callSid": call_sid}})
        )
        async with asyncio.timeout(5):
            await asyncio.gather(reader, return_exceptions=True)  # until the relay closes
        print(f"stream closed by the relay: code {ws.close_code}")
    for line in phone_session_metrics(base):
        print(f"metrics: {line}")
    status, body = webhook(base, public, token, "CA" + "d" * 32)
    root = ET.fromstring(body)
    said = root.find("Say")
    if root.find("Connect") is not None:
        print(f"second call from the same number: HTTP {status}, answered")
    else:
        print(f"second call from the same number: HTTP {status}, refused: {said.text!r}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("token")
    parser.add_argument("--public", default=None)
    args = parser.parse_args()
    sys.exit(
        asyncio.run(call(args.base.rstrip("/"), (args.public or args.base).rstrip("/"), args.token))
    )


if __name__ == "__main__":
    main()
