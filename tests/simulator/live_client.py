"""A raw GPT-Live WebSocket client for the simulator tests: everything it sends and receives
goes through the oracle (dialect "live")."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from realtime_simulator import Simulator
from realtime_simulator.synth import speech_pcm

from .conftest import frames
from .oracle import validate_client_event, validate_server_event

MODEL = "gpt-live-1"
KEY = {"Authorization": "Bearer test-key"}
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def responses_delegation(*tools: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {
        "type": "responses",
        "responses": {"model": "gpt-5.5", "tools": list(tools), **settings},
    }


def utterance(speech_ms: int = 1200, silence_ms: int = 800, rate: int = 24000) -> bytes:
    """Loud speech then silence (long enough for the VAD's 500 ms), PCM16 at ``rate``."""
    pcm = speech_pcm(speech_ms) + bytes(48 * silence_ms)
    if rate == 24000:
        return pcm
    samples = memoryview(pcm).cast("h")
    step = 24000 // rate if rate in (8000, 12000) else None
    if step:
        return b"".join(samples[i : i + 1].tobytes() for i in range(0, len(samples), step))
    return b"".join(  # 16 kHz: keep two samples of every three
        samples[i : i + 2].tobytes() for i in range(0, len(samples) - 2, 3)
    )


class LiveClient:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        validate_client_event(event, "live")
        await self.ws.send(json.dumps(event))

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def start(self, **session: Any) -> dict[str, Any]:
        await self.send({"type": "session.start", "session": {"model": MODEL, **session}})
        started = await self.recv()
        assert started["type"] == "session.started", started
        return started["session"]

    async def speak(self, pcm: bytes, frame_bytes: int = 960) -> None:
        for frame in frames(pcm, frame_bytes):
            audio = base64.b64encode(frame).decode()
            await self.send({"type": "session.input_audio.append", "audio": audio})

    async def say_typed(self, text: str, event_id: str | None = None) -> None:
        event = {"type": "session.commentary.append", "content": text, "delegation_id": None}
        await self.send(event | ({"event_id": event_id} if event_id else {}))

    async def recv(self, wait: float = 5.0) -> dict[str, Any]:
        event = json.loads(await asyncio.wait_for(self.ws.recv(), wait))
        validate_server_event(event, "live")
        self.events.append(event)
        return event

    async def until(
        self, want: str | Callable[[dict[str, Any]], bool], wait: float = 10.0
    ) -> list[dict[str, Any]]:
        """Receive events up to and including the first that is of type ``want`` (or
        matches it, when ``want`` is a predicate)."""
        match = want if callable(want) else (lambda e: e["type"] == want)
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(wait):
            while True:
                event = await self.recv(wait)
                got.append(event)
                if match(event):
                    return got

    async def until_spoken(self, text: str, wait: float = 10.0) -> list[dict[str, Any]]:
        """Receive events until the output transcript received so far ends with ``text``."""
        said: list[str] = []

        def done(event: dict[str, Any]) -> bool:
            if event["type"] == "session.output_transcript.delta":
                said.append(event["delta"])
            return "".join(said).endswith(text)

        return await self.until(done, wait)


def spoken(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "session.output_transcript.delta")


def heard(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in events if e["type"] == "session.input_transcript.delta")


def nested(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["event"] for e in events if e["type"] == "response.event"]


def live_url(sim: Simulator, route: str = "openai_live", query: str = "") -> str:
    path = "/v1/live/sessions" if route == "openai_live" else "/openai/v1/live/sessions"
    return f"{sim.base_url}{path}" + (f"?{query}" if query else "")


async def open_live(
    sim: Simulator,
    route: str = "openai_live",
    query: str = "",
    headers: dict[str, str] | None = None,
) -> LiveClient:
    # max_queue=None: a test that stops reading mid-answer must not stall the closing
    # handshake at teardown behind a full receive queue.
    ws = await connect(
        live_url(sim, route, query),
        additional_headers={**KEY, **(headers or {})},
        max_queue=None,
    )
    return LiveClient(ws)
