"""The WebSocket consumer: one per browser, owning that browser's upstream realtime session."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

from channels.db import database_sync_to_async as _db
from django.conf import settings
from websockets.exceptions import ConnectionClosed

from realtime import drain, limits, metrics, protocol
from realtime.closecodes import UPSTREAM_CONNECT_CLOSE, Close
from realtime.compat.consumer import DirectWebsocketConsumer
from realtime.config import RelayConfig
from realtime.counters import SessionCounters
from realtime.outbox import UpstreamOutbox
from realtime.registry import SESSIONS_GROUP, Presence
from realtime.upstream import UpstreamConnectError, UpstreamSession

log = logging.getLogger("realtime.session")


class SessionEnded(Exception):
    """Raised inside the upstream task to end the session with a client-facing reason."""

    def __init__(self, code: str, message: str, close_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.close_code = close_code


class RealtimeConsumer(DirectWebsocketConsumer):
    """Relays one browser ⇄ one upstream realtime session.

    Client frames are handled inline (validation, coalescing: no I/O beyond a queue put).
    Two owned tasks do the I/O: ``_upstream_reader`` (connect, configure, read and translate)
    and ``_upstream_writer`` (the only writer to the upstream socket, so order is kept).
    ``cleanup`` is the one idempotent cleanup, reached from every path.
    """

    config: RelayConfig
    groups = [SESSIONS_GROUP]  # broadcasts to every session on every worker

    async def handler_failed(self, message: dict[str, Any]) -> None:
        log.exception("session %s: unexpected error in %s", self.session_id, message["type"])
        await self._end("internal_error", "the relay hit an internal error", Close.INTERNAL)

    # ----------------------------------------------------------------------------------------
    # WebSocket handlers
    # ----------------------------------------------------------------------------------------

    async def connect(self) -> None:
        self.config = settings.RELAY_CONFIG
        self.session_id = uuid.uuid4()
        self.stats = SessionCounters()
        self.connect_ms: int | None = None
        self.close_code: int | None = None
        self.meter = metrics.SessionMeter(self.stats)
        self.meter.opened()
        self.translator = protocol.Translator()
        self.outbox = UpstreamOutbox(
            coalesce_ms=self.config.audio_coalesce_ms, on_dropped=self._audio_dropped
        )
        self.upstream: UpstreamSession | None = None
        self.ready = asyncio.Event()
        self.closed = False
        self._truncate_handle: asyncio.TimerHandle | None = None
        self._pending_cut: protocol.Interruption | None = None
        self._awaiting_response = False
        self._watch: asyncio.Timeout | None = None
        self._backlog_warned = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._close_reason = "client_closed"
        self._ended_by = ""
        self._last_activity = time.monotonic()
        self._rate = limits.MessageRate(self.config.max_messages_per_minute)
        await self.accept()
        log.info("session %s: client connected from %s", self.session_id, self._client_addr())
        refusal = self.scope.get("relay_refusal")
        if refusal is not None:
            await self._end(refusal.code, refusal.message, refusal.close_code)
            return
        self.presence = Presence(self.session_id, self.stats)
        if not await self.presence.open(**self._describe()):
            # Limits hold across workers through these rows: no row, no session.
            await self._end(
                "registry_unavailable",
                "The relay cannot register sessions right now; try again shortly.",
                Close.INTERNAL,
            )
            return
        over = await _db(limits.concurrency_refusal)(session_id=self.session_id, config=self.config)
        if over:
            await self._end("too_many_sessions", over, Close.LIMIT)
            return
        await self.join_groups()
        drain.register(self)
        self._spawn(self.presence.run(self.ready, on_beat=self.join_groups), "presence")
        self._spawn(self._upstream_reader(), "reader")
        self._spawn(
            limits.session_clock(
                config=self.config,
                last_activity=lambda: self._last_activity,
                warn=self._warn_session_ending,
                end=self._end,
            ),
            "clock",
        )

    async def disconnect(self, code: int) -> None:
        log.info("session %s: client disconnected (code %s)", self.session_id, code)
        self._client_close_code = code if isinstance(code, int) else None
        self.closed = True
        await self.cleanup()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closed:
            return
        self._last_activity = time.monotonic()
        if bytes_data is not None:
            if len(bytes_data) > self.config.max_binary_bytes:
                await self._end(
                    "frame_too_large",
                    f"binary frame of {len(bytes_data)} bytes exceeds the limit of "
                    f"{self.config.max_binary_bytes} bytes",
                    Close.TOO_BIG,
                )
                return
            self._on_audio(bytes_data)
            return
        if text_data is None:
            return
        limit = self.config.max_text_bytes
        # The limit is in UTF-8 bytes; a character is at most 4 of them.
        if len(text_data) * 4 > limit and (len(text_data.encode("utf-8", "surrogatepass")) > limit):
            await self._end(
                "frame_too_large",
                f"text frame exceeds the limit of {self.config.max_text_bytes} bytes",
                Close.TOO_BIG,
            )
            return
        try:
            command = protocol.parse_client_text(text_data)
        except protocol.ClientProtocolError as exc:
            self.stats.errors += 1
            await self.send(text_data=protocol.error_message(exc.code, exc.message))
            return
        if isinstance(command, protocol.UserMessage):
            await self._on_user_message(command)
        elif isinstance(command, protocol.Playback):
            self._on_playback(command)
        else:
            self._on_interrupt(command)

    # ----------------------------------------------------------------------------------------
    # Client commands
    # ----------------------------------------------------------------------------------------

    def _on_audio(self, data: bytes) -> None:
        self.stats.audio_bytes_in += len(data)
        self.stats.frames_in += 1
        self.outbox.audio(data)

    def _audio_dropped(self, size: int) -> None:
        # Bounded: a stalled upstream must not grow memory; tell the client once.
        self.stats.audio_bytes_dropped += size
        if not self._backlog_warned:
            self._backlog_warned = True
            self._send_soon(
                protocol.error_message(
                    "audio_dropped", "the realtime service is not keeping up; audio dropped"
                )
            )

    async def _on_user_message(self, command: protocol.UserMessage) -> None:
        if not self._rate.allow():
            self.stats.errors += 1
            await self.send(
                text_data=protocol.error_message(
                    "rate_limited",
                    f"more than {self.config.max_messages_per_minute} messages a minute; "
                    "message not sent",
                )
            )
            return
        if not self.outbox.events(protocol.user_message_events(command.text)):
            await self.send(
                text_data=protocol.error_message("busy", "the relay is busy; message not sent")
            )
            return
        self.stats.text_messages += 1
        self._awaiting_response = True
        if self._watch is not None and self._watch.when() is None:
            self._watch.reschedule(asyncio.get_running_loop().time() + self.config.stall_timeout_s)

    def _on_playback(self, playback: protocol.Playback) -> None:
        cut = self._pending_cut
        if cut is not None and cut.item_id == playback.item_id:
            self._truncate(playback.played_ms)

    def _on_interrupt(self, command: protocol.Interrupt) -> None:
        if self.translator.active_response_id:
            self._enqueue_event({"type": "response.cancel"})
        cut = self.translator.interruption(time.monotonic())
        if cut is not None:
            self._cut(cut)
        if command.playback is not None:
            self._on_playback(command.playback)
        elif self._pending_cut is not None:
            self._truncate(None)

    # ----------------------------------------------------------------------------------------
    # Barge-in truncation
    # ----------------------------------------------------------------------------------------

    def _cut(self, cut: protocol.Interruption) -> None:
        """Audio item cut short: wait briefly for the client's exact playback figure."""
        if self._pending_cut is not None:
            self._truncate(None)
        self.stats.barge_ins += 1
        self._pending_cut = cut
        wait = self.config.playback_report_wait_ms / 1000
        self._truncate_handle = asyncio.get_running_loop().call_later(wait, self._truncate, None)

    def _truncate(self, played_ms: int | None) -> None:
        cut, self._pending_cut = self._pending_cut, None
        if self._truncate_handle is not None:
            self._truncate_handle.cancel()
            self._truncate_handle = None
        if cut is not None:
            self.stats.truncations += 1
            self._enqueue_event(protocol.truncate_event(cut, played_ms))

    def _enqueue_event(self, event: dict[str, Any]) -> None:
        if not self.outbox.events([event]):
            log.warning("session %s: outbox full, dropped %s", self.session_id, event["type"])

    # ----------------------------------------------------------------------------------------
    # Upstream tasks
    # ----------------------------------------------------------------------------------------

    async def _upstream_reader(self) -> None:
        try:
            await self._open_upstream()
            await self._relay_upstream()
        except SessionEnded as ended:
            await self._end(ended.code, ended.message, ended.close_code)
        except UpstreamConnectError as exc:
            metrics.count_upstream_error(exc.code)  # connect failures are upstream errors too
            close = UPSTREAM_CONNECT_CLOSE.get(exc.code, Close.UPSTREAM_UNAVAILABLE)
            await self._end(exc.code, exc.message, close)
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            log.warning("session %s: upstream closed (code %s)", self.session_id, code)
            await self._end(
                "upstream_closed",
                f"the realtime service closed the session (code {code})",
                Close.UPSTREAM_CLOSED,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: upstream task failed", self.session_id)
            await self._end("internal_error", "the relay hit an internal error", Close.INTERNAL)

    async def _open_upstream(self) -> None:
        started = time.monotonic()
        self.upstream = await UpstreamSession.open(self.config)
        if self.closed:  # the client left while we were connecting
            return
        await self.upstream.send(
            json.dumps(protocol.session_update(self.config, self.upstream.dialect))
        )
        async with asyncio.timeout(self.config.connect_timeout_s):
            while True:
                event = json.loads(await self.upstream.recv())
                if event.get("type") == "session.updated":
                    break
                if event.get("type") == "error":
                    err = event.get("error") or {}
                    raise SessionEnded(
                        "upstream_session_rejected",
                        f"the realtime service rejected the session settings: "
                        f"{err.get('message') or err.get('code')}",
                        Close.UPSTREAM_CLOSED,
                    )
        self.connect_ms = int((time.monotonic() - started) * 1000)
        await self.send(text_data=protocol.control("connected", greeting=self.config.greeting))
        await self.send(
            text_data=protocol.control(
                "session_info",
                session_id=str(self.session_id),
                provider=self.config.provider_label,
            )
        )
        log.info(
            "session %s: live on %s after %d ms",
            self.session_id,
            self.config.provider_label,
            self.connect_ms,
        )
        self.meter.live(self.connect_ms)
        self.ready.set()
        self._spawn(self._upstream_writer(), "writer")

    async def _relay_upstream(self) -> None:
        assert self.upstream is not None
        recv = self.upstream.recv
        translate = self.translator.translate
        send = self.send
        loop = asyncio.get_running_loop()
        stall = self.config.stall_timeout_s
        while not self.closed:
            # Silence is fine while idle; while an answer is expected it means a stall.
            expecting = self._awaiting_response or self.translator.active_response_id
            try:
                async with asyncio.timeout(loop.time() + stall if expecting else None) as watch:
                    self._watch = watch
                    raw = await recv()
            except TimeoutError:
                raise SessionEnded(
                    "upstream_stalled",
                    "the realtime service stopped answering",
                    Close.UPSTREAM_STALLED,
                ) from None
            finally:
                self._watch = None
            event = json.loads(raw)
            kind = event.get("type")
            if kind == "response.created":
                self._awaiting_response = False
            result = translate(event, time.monotonic())
            for out in result.to_client:
                if isinstance(out, bytes):
                    await send(bytes_data=out)
                else:
                    await send(text_data=out)
            self._account(result)
            if result.interruption is not None:
                self._cut(result.interruption)
            if result.upstream_error is not None:
                self._on_upstream_error(result.upstream_error)

    def _account(self, result: protocol.Translation) -> None:
        stats = self.stats
        if result.audio_bytes:
            stats.audio_bytes_out += result.audio_bytes
            stats.frames_out += 1
        if result.usage is not None:
            stats.add_usage(result.usage)
        if result.speech_started:
            stats.speech_turns += 1
        self.meter.on_translation(result)

    def _on_upstream_error(self, error: dict[str, Any]) -> None:
        self.stats.errors += 1
        code = error.get("code")
        log.warning("session %s: upstream error %s", self.session_id, code)
        if code == "session_expired":
            raise SessionEnded(
                "upstream_session_expired",
                "the realtime session reached the service's time limit",
                Close.UPSTREAM_EXPIRED,
            )

    async def _upstream_writer(self) -> None:
        assert self.upstream is not None
        get, send = self.outbox.get, self.upstream.send
        try:
            while True:
                await send(await get())
        except ConnectionClosed:
            pass  # the reader sees the same close and reports it

    # ----------------------------------------------------------------------------------------
    # Endings the server starts: drain, the session clock, an administrator (channel layer)
    # ----------------------------------------------------------------------------------------

    async def drain(self) -> None:
        """Called for every session when the worker shuts down (realtime/drain.py)."""
        await self._end(
            "server_restarting",
            "This relay worker is restarting; reconnect to continue.",
            Close.RESTART,
        )

    async def _warn_session_ending(self, seconds_left: int) -> None:
        await self.send(text_data=protocol.control("session_ending", seconds_left=seconds_left))

    async def realtime_terminate(self, event: dict[str, Any]) -> None:
        self._ended_by = str(event.get("by") or "")
        log.info("session %s: terminated by %s", self.session_id, self._ended_by or "?")
        await self._end("terminated", "An administrator ended this session.", Close.TERMINATED)

    # ----------------------------------------------------------------------------------------
    # Ending and cleanup
    # ----------------------------------------------------------------------------------------

    async def _end(self, code: str, message: str, close_code: int) -> None:
        """End the session with a reason: error message, close frame, then cleanup."""
        if not self.closed:
            self.closed = True
            log.info("session %s: ending (%s, close %d)", self.session_id, code, close_code)
            self._close_reason = code
            self.close_code = close_code
            self.meter.ended(code)
            try:
                await self.send(text_data=protocol.error_message(code, message, fatal=True))
                await self.close(code=int(close_code))  # daphne refuses IntEnum codes
            except Exception:  # the client may already be gone
                pass
        await self.cleanup()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"realtime-{name}-{self.session_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_soon(self, text: str) -> None:
        self._spawn(self.send(text_data=text), "notice")

    async def cleanup(self) -> None:
        """Idempotent: every caller waits for the one cleanup (cancel tasks, close upstream)."""
        if getattr(self, "_shut", True) and self._cleanup is None:
            return  # never connected: nothing to clean up
        if self._cleanup is None:
            self._shut = True
            self.closed = True
            # Its own task: it may cancel the very task that asked for it (a reader that
            # hit an upstream error), and must still run to the end.
            self._cleanup = asyncio.ensure_future(self._cleanup_everything())
        await asyncio.shield(self._cleanup)

    async def _cleanup_everything(self) -> None:
        drain.unregister(self)
        self.outbox.close()
        if self._truncate_handle is not None:
            self._truncate_handle.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        if self.upstream is not None:
            await self.upstream.close()
        presence = getattr(self, "presence", None)
        if presence is not None:
            await presence.close(
                code=self.close_code or self._client_close_code,
                reason=self._close_reason,
                ended_by=self._ended_by,
            )
        self.meter.closed()
        log.info("session %s: closed; %s", self.session_id, self.stats.summary())

    def _describe(self) -> dict[str, Any]:
        """The registry row's fixed fields (no secrets: provider label and model only)."""
        headers = dict(self.scope.get("headers") or [])
        user = self.scope.get("user")
        return {
            "user": user if user is not None and user.is_authenticated else None,
            "client_addr": self._client_addr()[:64],
            "origin": headers.get(b"origin", b"").decode("latin-1")[:255],
            "user_agent": headers.get(b"user-agent", b"").decode("latin-1")[:255],
            "provider": self.config.provider,
            "model": self.config.model[:100],
            "channel_name": getattr(self, "channel_name", "") or "",
        }

    def _client_addr(self) -> str:
        client = self.scope.get("client") or ("?", 0)
        return f"{client[0]}:{client[1]}"

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self._shut = False
        await self.connect()  # groups are joined in connect(), once the session is admitted

    _shut = True  # until connect() runs there is nothing to clean up
    _cleanup: asyncio.Future[None] | None = None
    _client_close_code: int | None = None
