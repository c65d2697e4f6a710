from __future__ import annotations

import asyncio
import base64
import json
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from realtime_simulator import Simulator

from .oracle import validate_client_event, validate_server_event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FRAME_BYTES = 960  # 20 ms of PCM16 24 kHz


def wav_pcm(name: str) -> bytes:
    with wave.open(str(FIXTURES / name)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (24000, 2, 1)
        return w.readframes(w.getnframes())


def frames(pcm: bytes, size: int = FRAME_BYTES) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


class Client:
    """A raw websocket client that validates everything it sends and receives."""

    def __init__(self, ws: ClientConnection, dialect: str) -> None:
        self.ws = ws
        self.dialect = dialect
        self.events: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any]) -> None:
        validate_client_event(event, self.dialect)
        await self.ws.send(json.dumps(event))

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def append(self, pcm: bytes) -> None:
        audio = base64.b64encode(pcm).decode()
        await self.send({"type": "input_audio_buffer.append", "audio": audio})

    async def stream(self, pcm: bytes) -> None:
        for frame in frames(pcm):
            await self.append(frame)

    async def recv(self, wait: float = 5.0) -> dict[str, Any]:
        event = json.loads(await asyncio.wait_for(self.ws.recv(), wait))
        validate_server_event(event, self.dialect)
        self.events.append(event)
        return event

    async def until(self, type_: str, wait: float = 10.0) -> list[dict[str, Any]]:
        """Receive events up to and including the first of ``type_``."""
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(wait):
            while True:
                event = await self.recv(wait)
                got.append(event)
                if event["type"] == type_:
                    return got

    async def drain(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while True:
            try:
                got.append(await self.recv(quiet))
            except TimeoutError:
                return got


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def route_url(sim: Simulator, dialect: str, route: str = "openai", query: str = "") -> str:
    if route == "openai":
        url = f"{sim.base_url}/v1/realtime?model=gpt-realtime"
    elif route == "azure_ga":
        url = f"{sim.base_url}/openai/v1/realtime?model=my-deployment"
    else:
        url = f"{sim.base_url}/openai/realtime?api-version=2025-04-01-preview&deployment=dep"
    return url + (f"&{query}" if query else "")


async def open_client(
    sim: Simulator,
    dialect: str = "ga",
    route: str = "openai",
    query: str = "",
    headers: dict[str, str] | None = None,
    skip_hello: bool = False,
) -> Client:
    hdrs = {"Authorization": "Bearer test-key", **(headers or {})}
    if dialect == "beta":
        hdrs["OpenAI-Beta"] = "realtime=v1"
    ws = await connect(route_url(sim, dialect, route, query), additional_headers=hdrs)
    client = Client(ws, dialect)
    if not skip_hello:
        first = await client.recv()
        assert first["type"] == "session.created"
        if dialect == "beta":
            assert (await client.recv())["type"] == "conversation.created"
    return client


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(api_key="test-key", pace="fast") as simulator:
        yield simulator


@pytest.fixture
async def rt_sim() -> AsyncIterator[Simulator]:
    async with Simulator(api_key="test-key", pace="realtime") as simulator:
        yield simulator


def assert_all_sent_valid(sim: Simulator) -> None:
    """Every event every accepted connection sent passes the oracle (audio deltas slimmed)."""
    for record in sim.connections:
        for event in record.sent:
            if "delta_bytes" in event:
                event = {k: v for k, v in event.items() if k != "delta_bytes"} | {"delta": ""}
            validate_server_event(event, record.dialect or "ga")


def assert_all_received_valid(sim: Simulator) -> None:
    """Every event every accepted connection received passes the oracle (appends slimmed).
    For connections driven by the SDK, whose sends the tests do not build themselves."""
    for record in sim.connections:
        for event in record.received:
            if "audio_bytes" in event:
                event = {k: v for k, v in event.items() if k != "audio_bytes"} | {"audio": ""}
            validate_client_event(event, record.dialect or "ga")
