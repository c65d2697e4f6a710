"""YARDSTICK ONLY — a bare reference relay on plain ``websockets``. Not a product path.

It does the same per-frame work as the project's relay and nothing else: each binary PCM16
frame from the client becomes one ``input_audio_buffer.append`` event (base64 JSON) — the
obvious 1:1 framing; with ``--coalesce-bytes 960`` it joins frames like the project (flushed at
960 bytes or after 20 ms) — upstream events are parsed with ``json.loads`` and audio deltas
are base64-decoded and sent to the client as binary frames. No validation, no text
messages, no barge-in, no limits, no logging, no Django: the lean floor a relay in Python
can reach, so the benchmark can say what Channels + daphne cost on top.

    python -m relay_loadtools.bench.bare_relay --port 9300 \
        --upstream ws://127.0.0.1:9100 [--coalesce-bytes 960]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import signal

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

FLUSH_S = 0.020
AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")
SESSION_UPDATE = json.dumps(
    {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["audio"]}}
)
CONNECTED = '{"type":"control","action":"connected","greeting":"bare relay"}'


def append_event(chunk: bytes) -> str:
    return '{"type":"input_audio_buffer.append","audio":"' + base64.b64encode(chunk).decode() + '"}'


async def _client_to_upstream(
    client: ServerConnection, up: ClientConnection, flush_at: int
) -> None:
    if flush_at <= 0:  # 1:1 framing
        async for message in client:
            if isinstance(message, bytes):
                await up.send(append_event(message))
        return
    loop = asyncio.get_running_loop()
    buf = bytearray()
    timer: asyncio.TimerHandle | None = None
    pending: set[asyncio.Task[None]] = set()

    def flush() -> None:
        nonlocal timer
        timer = None
        if buf:
            task = asyncio.ensure_future(up.send(append_event(bytes(buf))))
            pending.add(task)
            task.add_done_callback(pending.discard)
            buf.clear()

    async for message in client:
        if not isinstance(message, bytes):
            continue
        buf += message
        if len(buf) >= flush_at:
            if timer is not None:
                timer.cancel()
                timer = None
            chunk = bytes(buf)
            buf.clear()
            await up.send(append_event(chunk))
        elif timer is None:
            timer = loop.call_later(FLUSH_S, flush)
    if timer is not None:
        timer.cancel()


async def _upstream_to_client(client: ServerConnection, up: ClientConnection) -> None:
    async for raw in up:
        event = json.loads(raw)
        if event.get("type") in AUDIO_DELTAS:
            await client.send(base64.b64decode(event["delta"]))


async def handle(client: ServerConnection, upstream: str, flush_at: int) -> None:
    url = f"{upstream}/v1/realtime?model=gpt-realtime"
    async with connect(url, compression=None, max_size=16 * 2**20) as up:
        await up.send(SESSION_UPDATE)
        async for raw in up:
            if json.loads(raw).get("type") == "session.updated":
                break
        await client.send(CONNECTED)
        tasks = [
            asyncio.create_task(_client_to_upstream(client, up, flush_at)),
            asyncio.create_task(_upstream_to_client(client, up)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await asyncio.gather(*tasks, return_exceptions=True)


async def main(host: str, port: int, upstream: str, flush_at: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def handler(client: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await handle(client, upstream, flush_at)

    async with serve(handler, host, port, compression=None, max_size=2**20, backlog=2048):
        print(f"bare relay on ws://{host}:{port} -> {upstream}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bare reference relay (benchmark yardstick)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="simulator base, ws://host:port")
    parser.add_argument("--coalesce-bytes", type=int, default=0, help="0: one append per frame")
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port, args.upstream, args.coalesce_bytes))
