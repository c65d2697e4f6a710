"""`manage.py talk`: a small command-line client of the relay, for users and smoke tests.

A lost connection (no close frame, or the worker draining: 1012) is resumed: `talk`
reconnects with back-off and the session's latest ``resume_token`` (docs/protocol.md,
"Resuming a session") and goes on with the same conversation."""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from django.core.management.base import BaseCommand, CommandError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from realtime.management.talk_io import (
    RATE,
    follow_up,
    latency_line,
    read_wav_24k,
    save_wav,
    tool_line,
)
from realtime.ops import runtime as relay_runtime

FRAME_MS = 20
FOLLOW_UP_S = 1.0  # after an answer: how long a tool call or a next answer may take to show
BACKOFF_START_S = 0.5  # reconnects: 0.5, 1, 2, 4, 8, 8 … s (±25 %)
BACKOFF_MAX_S = 8.0
RESUME_GIVE_UP_S = 60.0  # RELAY_RESUME_SECONDS' default: after that the session is gone
# Closes after which reconnecting cannot help (docs/protocol.md, "Resuming a session").
FINAL_CODES = frozenset({1000, 1008, 4000, 4003, 4004, 4005, 4007, 4011, 4015})
LOGIN_HINT = (
    "This relay requires a login: run again with --user NAME "
    "(password from $RELAY_PASSWORD or a prompt)"
)


class Lost(Exception):
    """The connection went away in a way a resume can repair."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Command(BaseCommand):
    help = (
        "Talk to a running relay: send text or a WAV file, print what each side says "
        "(--url picks the relay; --out saves the reply audio)."
    )
    requires_system_checks = []  # a client: the server's checks (secret key…) are not its

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--url",
            help="the relay's WebSocket URL, e.g. wss://relay.example.com/realtime "
            "(default: ws://127.0.0.1:$PORT/realtime, the port serve uses: $PORT or 8080)",
        )
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument(
            "--text",
            action="append",
            help="send this as a user_message; repeat it for several messages, each sent "
            "once the previous one is answered (and --pause seconds later)",
        )
        group.add_argument("--wav", type=Path, help="stream this WAV file as microphone audio")
        parser.add_argument(
            "--out", type=Path, help="save the reply audio to this WAV file (default: not saved)"
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
        parser.add_argument(
            "--pause",
            type=float,
            default=0.0,
            help="seconds to wait (still printing what the relay says) between two --text "
            "messages, e.g. to see the relay renew its upstream session in between",
        )
        parser.add_argument("--origin", help="Origin header (default: derived from --url)")
        parser.add_argument(
            "--user",
            help="log in as this user for a connect ticket (password from $RELAY_PASSWORD "
            "or a prompt); needed when the relay uses a paid upstream",
        )
        parser.add_argument(
            "--drop-after",
            type=int,
            metavar="N",
            help="for trying resume: after the Nth answer, drop the connection without a "
            "close frame (as a lost network would); talk reconnects with the session's "
            "resume token and goes on with the same conversation",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        audio = read_wav_24k(options["wav"]) if options["wav"] else None
        if not options["url"]:
            port = relay_runtime.current().config.port  # $PORT, validated, as serve reads it
            options["url"] = f"ws://127.0.0.1:{port}/realtime"
        self._error_code: str | None = None
        self._fatal = False  # the current connection got a fatal error
        self._speaking: str | None = None  # the id of the answer being printed
        self._token: str | None = None  # the latest session_info's resume_token
        self._resuming = False  # the current connection carries the token
        self._answers = 0  # answers completed (for --drop-after)
        self._unanswered: str | None = None  # the message whose answer is awaited
        self._lost_at: float | None = None  # when the connection was lost (until reconnected)
        self._attempt = 0  # reconnect attempts since then
        self._sent = 0  # audio bytes streamed so far (a resumed --wav goes on from there)
        try:
            code = asyncio.run(self._talk(options, audio))
        except (OSError, TimeoutError) as exc:
            raise CommandError(f"cannot talk to {options['url']}: {exc}") from None
        if code:
            message = f"the relay closed the session (code {code})"
            if self._error_code == "auth_required" and not options["user"]:
                message += f". {LOGIN_HINT}"
            raise CommandError(message)

    async def _talk(self, options: dict[str, Any], audio: bytes | None) -> int | None:
        reply = bytearray()
        started = time.monotonic()
        todo = list(options["text"] or [])  # messages not yet sent
        while True:
            try:
                code = await self._connection(options, audio, todo, reply)
            except Lost as lost:
                if self._lost_at is None:
                    self._lost_at = time.monotonic()
                    self._end_answer()
                    self.stdout.write(f"relay: connection lost (code {lost.code}); reconnecting…")
                    if self._unanswered is not None:
                        self.stdout.write(
                            f"talk: the answer to {self._unanswered!r} was cut; ask again if needed"
                        )
                        self._unanswered = None
                if time.monotonic() - self._lost_at > RESUME_GIVE_UP_S:
                    raise CommandError(
                        f"could not reconnect to {options['url']} within {RESUME_GIVE_UP_S:.0f} s"
                    ) from None
                delay = min(BACKOFF_MAX_S, BACKOFF_START_S * 2**self._attempt)
                self._attempt += 1
                await asyncio.sleep(delay * random.uniform(0.75, 1.25))
                continue
            if code is not None:
                return code
            break
        self._end_answer()
        seconds = len(reply) / 48000
        if options["out"] is not None:
            save_wav(options["out"], reply)
            where = f"→ {options['out']}"
        else:
            where = "(not saved: --out FILE.wav keeps it)"
        self.stdout.write(
            f"reply audio: {seconds:.2f} s {where} ({time.monotonic() - started:.1f} s in all)"
        )
        return None

    async def _connection(
        self, options: dict[str, Any], audio: bytes | None, todo: list[str], reply: bytearray
    ) -> int | None:
        """One connection: the messages in ``todo`` (each removed once sent) or the rest
        of ``audio``. None when done; a close code when the relay ended the session; raises
        ``Lost`` when a reconnect may resume it."""
        url = options["url"]
        if options["user"]:
            url = await asyncio.to_thread(self._ticket_url, url, options["user"])
        self._resuming = self._token is not None
        if self._resuming:
            url += f"{'&' if '?' in url else '?'}resume={quote(str(self._token), safe='')}"
        parts = urlsplit(url)
        origin = (
            options["origin"] or f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
        )
        self._fatal = False
        streamer: asyncio.Task[None] | None = None
        opened = False
        try:
            async with connect(url, origin=origin, max_size=2**22) as ws:  # type: ignore[arg-type]
                greeting = await self._until(ws, "connected", reply, options["timeout"])
                opened = True
                info = await self._until(ws, "session_info", reply, options["timeout"])
                self._greet(greeting, info)
                if audio is None:
                    while todo:
                        if len(todo) < len(options["text"]) and options["pause"]:
                            await self._listen(ws, reply, options["pause"])
                        text = todo.pop(0)
                        self.stdout.write(f"you: {text}")
                        await ws.send(json.dumps({"type": "user_message", "text": text}))
                        # Lost before its answer ended: the relay cut the answer where this
                        # client was (the message stays in the conversation); not sent again.
                        self._unanswered = text
                        await self._until_answered(ws, reply, options["timeout"])
                        self._answered(ws, options["drop_after"])
                else:
                    streamer = asyncio.create_task(self._stream(ws, audio))
                    await self._until_answered(ws, reply, options["timeout"])
                    self._answered(ws, options["drop_after"])
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1006
            if self._resumable(code, opened):
                raise Lost(code) from None
            return code
        except OSError:  # no connection (a worker restarting): retry while resuming
            if self._token is not None:
                raise Lost(1006) from None
            raise
        finally:
            if streamer is not None:
                streamer.cancel()
        return None

    def _resumable(self, code: int, opened: bool) -> bool:
        """A reconnect with the token goes on with the session (docs/protocol.md)."""
        if self._token is None or code in FINAL_CODES:
            return False
        return code == 1012 or not opened or not self._fatal

    def _greet(self, greeting: dict, info: dict) -> None:
        self._lost_at, self._attempt = None, 0  # connected again: a later loss starts afresh
        if self._resuming and info.get("resumed"):
            self.stdout.write(
                f"relay: resumed session {info.get('session_id')}; the conversation goes on"
            )
        elif self._resuming:
            self.stdout.write(f"relay: {greeting.get('greeting')}")
            self.stdout.write(
                "relay: new session; the earlier conversation could not be resumed"
            )  # the reason follows (error resume_unavailable)
        else:
            self.stdout.write(f"relay: {greeting.get('greeting')}")
        self._token = info.get("resume_token")  # single-use: the latest replaces the old one

    def _answered(self, ws: Any, drop_after: int | None) -> None:
        """Count an answer; with --drop-after, cut the network after the Nth one."""
        self._answers += 1
        if drop_after is not None and self._answers == drop_after:
            self._end_answer()
            self.stdout.write("talk: dropping the connection (--drop-after)")
            ws.transport.abort()  # no close frame: the relay sees a lost socket
            raise ConnectionClosed(None, None)  # as the next read would (1006)

    @staticmethod
    def _ticket_url(url: str, user: str) -> str:
        """POST /api/realtime/ticket with HTTP Basic; the ticket is good for one connect."""
        import getpass

        import httpx

        password = os.environ.get("RELAY_PASSWORD") or getpass.getpass(f"password for {user}: ")
        parts = urlsplit(url)
        http_base = f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
        response = httpx.post(f"{http_base}/api/realtime/ticket", auth=(user, password), timeout=10)
        if response.status_code != 200:
            raise CommandError(f"no connect ticket: HTTP {response.status_code} {response.text}")
        return f"{url}?ticket={response.json()['ticket']}"

    async def _stream(self, ws: Any, audio: bytes) -> None:
        """Microphone-like: 20 ms frames in real time, then silence so the VAD ends the turn."""
        step = RATE * 2 * FRAME_MS // 1000
        tail = bytes(step * 50)  # one second of silence
        data = audio + tail
        t0 = time.monotonic()
        for i, offset in enumerate(range(self._sent, len(data), step)):
            await ws.send(data[offset : offset + step])
            self._sent = offset + step  # a resumed connection goes on from here
            await asyncio.sleep(max(0.0, t0 + (i + 1) * FRAME_MS / 1000 - time.monotonic()))

    async def _until(self, ws: Any, action: str, reply: bytearray, timeout: float) -> dict:
        return await self._wait(ws, lambda m: m.get("action") == action, reply, timeout)

    async def _until_answered(self, ws: Any, reply: bytearray, timeout: float) -> None:
        """Until the last answer has ended: a response that calls tools is followed by
        another one (the tool_call notice arrives right after the first response_done)."""
        await self._until(ws, "response_done", reply, timeout)
        self._unanswered = None  # answered (a drop from here on cuts nothing of it)
        while True:
            try:
                async with asyncio.timeout(FOLLOW_UP_S):
                    await self._wait(ws, follow_up, reply, timeout)
            except TimeoutError:
                return
            await self._until(ws, "response_done", reply, timeout)

    async def _listen(self, ws: Any, reply: bytearray, seconds: float) -> None:
        """Print what the relay says for this long."""
        try:
            await self._wait(ws, lambda m: False, reply, seconds)
        except TimeoutError:
            return

    async def _wait(
        self, ws: Any, match: Callable[[dict], bool], reply: bytearray, timeout: float
    ) -> dict:
        async with asyncio.timeout(timeout):
            async for frame in ws:
                if isinstance(frame, bytes):
                    reply.extend(frame)
                    continue
                message = json.loads(frame)
                self._show(message)
                if match(message):
                    return message
        raise ConnectionClosed(None, None)

    def _show(self, message: dict[str, Any]) -> None:
        """One labelled line per thing said: relay, you, assistant, tool."""
        kind, action = message.get("type"), message.get("action")
        if kind == "text_delta":
            delta = message["delta"]
            if self._speaking != message.get("id"):
                self._end_answer()
                self._speaking = message.get("id")
                self.stdout.write("assistant: ", ending="")
                delta = delta.lstrip()  # an answer resumed after a tool line
            self.stdout.write(delta, ending="")
            self.stdout.flush()
            return
        if kind == "control" and action == "text_done":
            self._end_answer()
            return
        if kind == "control" and action == "response_done":
            self._end_answer()
            line = latency_line(message.get("latency_ms"))
            if line:
                self.stdout.write(line)
            return
        if kind == "transcription":
            self._end_answer()
            self.stdout.write(f"you (transcribed): {message['text']}")
        elif kind == "tool_call" and message.get("status") != "started":
            self._end_answer()
            self.stdout.write(tool_line(message))
        elif kind == "error":
            self._end_answer()
            self._error_code = message.get("code")
            self._fatal = self._fatal or bool(message.get("fatal"))
            self.stderr.write(f"error {message.get('code')}: {message.get('message')}")
        elif kind == "control" and action == "upstream_renewed":
            self._end_answer()
            self.stdout.write(
                f"relay: upstream session {message.get('upstream')} took over "
                f"({message.get('reason')}); the conversation goes on"
            )
        elif kind == "control" and action == "speech_started":
            self._end_answer()
            self.stdout.write("you: (speech started)")

    def _end_answer(self) -> None:
        if self._speaking is not None:
            self.stdout.write("")
            self._speaking = None
