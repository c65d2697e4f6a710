"""RelaySession: one client's conversation with one upstream session, whatever the socket.

The session owns the upstream adapter, the outbox, barge-in state and every task it starts.
It talks to its client through a ``ClientPort`` in neutral terms (``client_events``: speech
started, an answer's text, an error…; reply audio as bytes; close with a code), which each
edge encodes for its client (the WebSocket consumer: the browser protocol). Lifecycle:

    connecting ──(upstream configured: greeting)──▶ live ──end()──▶ ending ──▶ closed
         └──────────────────────── end() / close() ───────────────────────────┘

``end(ending)`` tells the client why (error message + close code) and closes; ``close()``
releases everything, once, on every path (client gone, upstream gone, error, terminate,
drain). Two tasks do the I/O: the reader (open the upstream, then read and handle its
events) and the writer (the only sender upstream, so order is kept).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from realtime.extensions.client_messages import AddSystemMessage
from realtime.guards import session_limits as limits
from realtime.kernel import commands, endings
from realtime.kernel.endings import Ending, SessionEnded
from realtime.kernel.events import UsageReport
from realtime.ops import metrics
from realtime.session import client_events as client
from realtime.session.answers import Answers
from realtime.session.client_events import ClientEvent
from realtime.session.outbox import UpstreamOutbox
from realtime.session.playback import AudioTracker, BargeIn
from realtime.session.ports import Admission, ClientPort, Roster
from realtime.session.states import OPEN, State
from realtime.session.tool_turns import ToolTurns
from realtime.session.turn_taking import TurnTaking
from realtime.session.upstream_events import UpstreamEventHandlers
from realtime.upstream import adapter_for

if TYPE_CHECKING:
    from realtime.upstream import UpstreamClients

log = logging.getLogger("realtime.session")


class RelaySession(TurnTaking, UpstreamEventHandlers):
    def __init__(
        self,
        *,
        port: ClientPort,
        admitted: Admission,
        clients: UpstreamClients,
        roster: Roster,
        on_heartbeat: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``clients``: the worker's SDK clients (one per upstream configuration);
        ``roster``: the worker's live sessions, which this one joins while it is open."""
        config = admitted.config  # the worker's, with this user's session policy applied
        self.id = admitted.session_id
        self.port = port
        self.clients = clients
        self.roster = roster
        self.config = config
        self.counters = admitted.counters
        self.conversation = admitted.conversation
        self.state = State.CONNECTING
        self.ending: Ending | None = None
        self.ended_by = ""
        self.client_close_code: int | None = None
        self.connect_ms: int | None = None
        self.ready = asyncio.Event()
        self.meter = metrics.SessionMeter(self.counters)
        self.upstream = adapter_for(config, clients, admitted.tools)
        self.upstream.wake = self._wake_reader
        self.tools = ToolTurns(
            tools=admitted.tools,
            upstream=self.upstream,
            counters=self.counters,
            runner_options={
                "user": admitted.user,
                "session_id": self.id,
                "config": config,
                "default_timeout": config.tool_timeout_s,
            },
            send=self._ask_for_answer,
            notify=self._tool_notice,
        )
        self.outbox = UpstreamOutbox(
            coalesce_ms=config.audio_coalesce_ms,
            encode_audio=self.upstream.audio_frame,
            on_dropped=self._audio_dropped,
        )
        self.tracker = AudioTracker()
        self.barge_in = BargeIn(wait_ms=config.playback_report_wait_ms, truncate=self._truncate)
        self._presence = admitted.presence
        self._budget = (
            admitted.budget
        )  # budgets (realtime/guards/budgets.py): shown in session_info
        self._on_heartbeat = on_heartbeat
        self._rate = limits.MessageRate(config.max_messages_per_minute)
        self.answers = Answers()  # active, awaited, wanted, cancelled (answers.py)
        self._uncommitted_bytes = 0  # client audio since the last commit (manual turns)
        self._last_activity = time.monotonic()
        self._watch: asyncio.Timeout | None = None
        self._stall_s = config.stall_timeout_s
        self._last_upstream = 0.0  # loop time of the last upstream frame
        self._backlog_warned = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing: asyncio.Future[None] | None = None
        self._handlers = self.event_handlers()

    # ------------------------------------------------------------------------------------------
    # What the client edge calls
    # ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.meter.opened()
        self.roster.register(self)
        self._spawn(self._presence.run(self.ready, on_beat=self._on_heartbeat), "presence")
        self._spawn(self._run_upstream(), "reader")
        self._spawn(
            limits.session_clock(
                config=self.config,
                last_activity=lambda: self._last_activity,
                warn=self._warn_session_ending,
                end=self.end,
            ),
            "clock",
        )

    def audio(self, data: bytes) -> None:
        """One client audio frame (PCM16 24 kHz): coalesced into the outbox (and, once live,
        written upstream at once when nothing is queued ahead of it)."""
        if self.state not in OPEN:
            return
        self._last_activity = time.monotonic()
        counters = self.counters
        counters.audio_bytes_in += len(data)
        counters.frames_in += 1
        self._uncommitted_bytes += len(data)
        self.outbox.audio(data)

    async def command(self, command: commands.ClientCommand) -> None:
        if self.state not in OPEN:
            return
        self._last_activity = time.monotonic()
        if isinstance(command, commands.UserMessage):
            await self._user_message(command.text)
        elif isinstance(command, commands.Playback):
            self.barge_in.playback(command.item_id, command.played_ms)
        elif isinstance(command, commands.Interrupt):
            self._interrupt(command.playback)
        elif isinstance(command, commands.Commit):
            await self._commit()
        elif isinstance(command, AddSystemMessage):
            self._enqueue(self.upstream.system_message(command.text))
            self.conversation.add("system", "system_message", command.text)

    async def reject(self, code: str, message: str) -> None:
        """A client frame the relay could not accept (non-fatal: the session goes on)."""
        if self.state not in OPEN:
            return
        self._last_activity = time.monotonic()
        await self._client_error(code, message)

    async def drain(self) -> None:
        """The worker is shutting down (the roster drains its sessions)."""
        await self.end(endings.SERVER_RESTARTING)

    async def end(self, ending: Ending, *, ended_by: str = "") -> None:
        """End the session with a reason: error message, close frame, then close()."""
        if self.state in OPEN:
            self.state = State.ENDING
            self.ending, self.ended_by = ending, ended_by
            self.meter.ended(ending.code)
            log.info("session %s: ending (%s, close %d)", self.id, ending.code, ending.close_code)
            try:
                await self.port.send_event(client.Error(ending.code, ending.message, fatal=True))
                await self.port.close(ending.close_code)
            except Exception:  # the client may already be gone
                pass
        await self.close()

    async def client_gone(self, code: int | None) -> None:
        """The client closed the socket (or it broke)."""
        self.client_close_code = code if isinstance(code, int) else None
        await self.close()

    async def close(self) -> None:
        """Idempotent: every caller waits for the one release of everything."""
        if self._closing is None:
            if self.ending is None:
                self.ending = endings.CLIENT_CLOSED
                self.meter.ended(self.ending.code)
            self.state = State.ENDING
            # Its own task: it may cancel the very task that asked for it (a reader that
            # hit an upstream error), and must still run to the end.
            self._closing = asyncio.ensure_future(self._release())
        await asyncio.shield(self._closing)

    # ------------------------------------------------------------------------------------------
    # The upstream: open, then read and handle its events
    # ------------------------------------------------------------------------------------------

    async def _run_upstream(self) -> None:
        try:
            await self._open_upstream()
            await self._relay_upstream()
        except SessionEnded as ended:
            await self.end(ended.ending)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            ending = self.upstream.closed_ending(exc)
            if ending is not None:
                log.warning("session %s: %s", self.id, ending.message)
                await self.end(ending)
                return
            log.exception("session %s: upstream task failed", self.id)
            await self.end(endings.INTERNAL_ERROR)

    async def _open_upstream(self) -> None:
        started = time.monotonic()
        try:
            await self.upstream.open()
        except SessionEnded as failed:
            metrics.count_upstream_error(failed.ending.code)  # connect failures count too
            raise
        self.connect_ms = int((time.monotonic() - started) * 1000)
        config = self.config
        await self.port.send_event(client.Connected(config.greeting))
        await self.port.send_event(
            client.SessionInfo(
                session_id=str(self.id),
                provider=config.provider_label,
                api=self.upstream.api,
                turn_detection=self.upstream.turn_detection,
                budget=self._budget,
            )
        )
        log.info(
            "session %s: live on %s after %d ms", self.id, config.provider_label, self.connect_ms
        )
        self.state = State.LIVE
        self.meter.live(self.connect_ms)
        self.ready.set()
        self._spawn(self._write_upstream(), "writer")
        self.outbox.write_now = self.upstream.write_now  # audio skips the writer when it can

    async def _relay_upstream(self) -> None:
        """Read, translate and handle upstream frames. One timeout covers many frames: it is
        moved only when something is due sooner (a stall, an adapter's derived event), and a
        check that fires early just waits again; no timer is made per frame."""
        upstream = self.upstream
        recv, translate, handlers = upstream.recv, upstream.translate, self._handlers
        loop = asyncio.get_running_loop()
        self._last_upstream = loop.time()
        while self.state is State.LIVE:
            try:
                async with asyncio.timeout_at(self._next_check()) as watch:
                    self._watch = watch
                    while True:
                        frame = await recv()
                        now = self._last_upstream = loop.time()
                        for event in translate(frame, now):
                            await handlers[type(event)](event)
                        self._rearm()
            except TimeoutError:
                # The expired timeout can no longer be moved: handlers below that ask for a
                # wake-up find none, and the next wait starts from _next_check() anyway.
                self._watch = None
                now = loop.time()
                due = upstream.deadline()
                if due is not None and now >= due:
                    for event in upstream.tick(now):
                        await handlers[type(event)](event)
                elif self.answers.expecting and now - self._last_upstream >= self._stall_s:
                    # Silence is fine while idle; while an answer is expected it is a stall.
                    raise SessionEnded(endings.UPSTREAM_STALLED) from None
            finally:
                self._watch = None

    def _next_check(self) -> float | None:
        """When the reader must look again without a frame: a stall, an adapter's deadline."""
        due = self.upstream.deadline()
        if self.answers.expecting:
            stall = self._last_upstream + self._stall_s
            if due is None or stall < due:
                return stall
        return due

    def _rearm(self) -> None:
        """Move the reader's timeout earlier when something is now due sooner."""
        watch = self._watch
        if watch is not None and not watch.expired():
            due = self._next_check()
            if due is not None:
                when = watch.when()
                if when is None or due < when:
                    watch.reschedule(due)

    async def _write_upstream(self) -> None:
        get, send = self.outbox.get, self.upstream.send
        try:
            while True:
                await send(await get())
        except Exception as exc:
            if self.upstream.closed_ending(exc) is None:
                raise
            # the reader sees the same close and reports it

    # ------------------------------------------------------------------------------------------
    # Tasks and release
    # ------------------------------------------------------------------------------------------

    async def _warn_session_ending(self, seconds_left: int) -> None:
        await self.port.send_event(client.SessionEnding(seconds_left))

    def _wake_reader(self) -> None:
        """The adapter has events due now (e.g. the user started speaking): end the
        reader's wait so it collects them with ``tick``."""
        watch = self._watch
        if watch is not None and not watch.expired():
            watch.reschedule(asyncio.get_running_loop().time())

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(f"realtime-{name}-{self.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_soon(self, event: ClientEvent) -> None:
        self._spawn(self.port.send_event(event), "notice")

    async def _release(self) -> None:
        self.roster.unregister(self)
        self.outbox.close()
        self.barge_in.close()
        await self.tools.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        for event in await self.upstream.close():
            if isinstance(event, UsageReport):  # the final billed time, for the row
                self.counters.upstream_seconds = max(self.counters.upstream_seconds, event.seconds)
        ending = self.ending or endings.CLIENT_CLOSED
        code = self.client_close_code if ending is endings.CLIENT_CLOSED else ending.close_code
        await self._presence.close(code=code, reason=ending.code, ended_by=self.ended_by)
        self.meter.closed()
        self.state = State.CLOSED
        summary = self.counters.summary() + self.tools.summary()
        log.info("session %s: closed; %s", self.id, summary)
