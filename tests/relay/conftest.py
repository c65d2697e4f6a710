"""Fixtures for relay tests: the simulator in-process, the consumer behind a communicator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from realtime.edge.routing import websocket_urlpatterns
from realtime.kernel.config import RelayConfig
from realtime.ops import runtime as relay_runtime

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def use_config(config: RelayConfig) -> RelayConfig:
    """Serve the following connections with this configuration (the reaper stays off)."""
    runtime = relay_runtime.current()
    runtime.config = config.replace(reaper_enabled=False)
    return runtime.config


def configure(**changes: Any) -> RelayConfig:
    """Change some settings of the current configuration."""
    return use_config(relay_runtime.current().config.replace(**changes))


class AsUser:
    """Puts a signed-in Django user into the scope, as Channels' auth middleware would."""

    def __init__(self, inner: Any, user: Any) -> None:
        self.inner, self.user = inner, user

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        return await self.inner({**scope, "user": self.user}, receive, send)


class Client:
    """A test client of the relay: collects what the relay sends, by kind."""

    def __init__(self, path: str = "/realtime", *, user: Any = None) -> None:
        app: Any = URLRouter(websocket_urlpatterns)
        if user is not None:
            app = AsUser(app, user)
        self.ws = WebsocketCommunicator(app, path)
        self.messages: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.close_code: int | None = None

    async def connect(self, *, greeting: bool = True) -> dict[str, Any] | None:
        connected, _ = await self.ws.connect()
        assert connected
        if greeting:
            return await self.until(action="connected")
        return None

    async def next(self, timeout: float = 5) -> dict[str, Any] | bytes:
        frame = await self.ws.receive_output(timeout)
        if frame["type"] == "websocket.close":
            self.close_code = frame.get("code", 1000)
            raise ConnectionError(f"closed with {self.close_code}")
        if frame.get("bytes") is not None:
            self.audio += frame["bytes"]
            return frame["bytes"]
        message = json.loads(frame["text"])
        self.messages.append(message)
        return message

    async def until(
        self, *, type: str = "control", action: str | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                message = await self.next(timeout)
                if isinstance(message, bytes) or message.get("type") != type:
                    continue
                if action is None or message.get("action") == action:
                    return message

    async def until_seen(
        self, *, type: str = "control", action: str | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        """The first such message, whether it already arrived or is still to come."""
        earlier = self.of(type, action)
        if earlier:
            return earlier[0]
        return await self.until(type=type, action=action, timeout=timeout)

    async def until_count(self, action: str, count: int, timeout: float = 10) -> None:
        """Until `count` control messages with this action have arrived in all."""
        async with asyncio.timeout(timeout):
            while len(self.of("control", action)) < count:
                await self.next(timeout)

    async def until_closed(self, timeout: float = 10) -> int:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.next(timeout)
        except ConnectionError:
            pass
        assert self.close_code is not None
        # As a real server would: the closed socket delivers websocket.disconnect.
        await self.ws.send_input({"type": "websocket.disconnect", "code": self.close_code})
        await self.ws.wait(timeout=3)
        return self.close_code

    def of(self, type: str, action: str | None = None) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if m.get("type") == type and (action is None or m.get("action") == action)
        ]

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send_to(text_data=json.dumps(message))

    async def send_audio(self, pcm: bytes, frame_bytes: int = 960, realtime: bool = False) -> None:
        for offset in range(0, len(pcm), frame_bytes):
            await self.ws.send_to(bytes_data=pcm[offset : offset + frame_bytes])
            await asyncio.sleep(frame_bytes / 48000 if realtime else 0)

    async def close(self) -> None:
        await self.ws.disconnect()


def relay_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("realtime-") and not t.done()]


def wav_pcm(name: str) -> bytes:
    from realtime.management.talk_io import read_wav_24k

    return read_wav_24k(FIXTURES / name)
