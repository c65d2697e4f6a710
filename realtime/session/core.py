"""RelaySession: one client's conversation with one upstream session, whatever the socket.

The session owns the upstream adapter, the outbox, barge-in state and every task it starts.
It talks to its client through a ``ClientPort`` (send text, send bytes, close with a code),
which the WebSocket consumer implements. Lifecycle:

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
from typing import TYPE_CHECKING, Any, Protocol

from realtime.edge import protocol
from realtime.extensions.client_messages import AddSystemMessage
from realtime.guards import session_limits as limits
from realtime.kernel import endings
from realtime.kernel.endings import Ending, SessionEnded
from realtime.kernel.events import UsageReport
from realtime.ops import metrics
from realtime.session.outbox import UpstreamOutbox
from realtime.session.playback import AudioTracker, BargeIn
from realtime.session.states import OPEN, State
from realtime.session.tool_turns import ToolTurns
from realtime.session.turn_taking import TurnTaking
from realtime.session.upstream_events import UpstreamEventHandlers
from realtime.upstream import adapter_for

if TYPE_CHECKING:
    from realtime.edge.admission import Admitted
    from realtime.ops.runtime import Runtime

log = logging.getLogger("realtime.session")


class ClientPort(Protocol):
    """The client side of a session (the WebSocket consumer implements it)."""

    async def send_text(self, text: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int) -> None: ...


class RelaySession(TurnTaking, UpstreamEventHandlers):
    def __init__(
        self,
        *,
        port: ClientPort,
        runtime: Runtime,
        admitted: Admitted,
        on_heartbeat: Callable[[], Awaitable[None]] | None = None,
        answer_budget: Callable[[dict[str, int]], Awaitable[Ending | None]] | None = None,
    ) -> None:
        """``answer_budget(counters)``: the user's daily budget checked after every answer
        (``budgets.answer_check``): an ending when it is used up."""
        config = admitted.config  # the runtime's, with this user's session policy applied
        self.id = admitted.session_id
        self.port = port
        self.runtime = runtime
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
        self.upstream = adapter_for(config, runtime.clients, admitted.tools)
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
            spawn=self._spawn,
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
        self._answer_budget = answer_budget
        self._budget_checking = False  # a check is running: nothing goes upstream meanwhile
        self._budget_again = False  # another answer ended during the check: check once more
        self._rate = limits.MessageRate(config.max_messages_per_minute)  # user_message
        self._control_rate = limits.MessageRate(config.max_control_messages_per_minute)
        self._answer_active = False  # between response_started and response_done
        self._awaiting_answer = False  # asked for one; it has not started yet
        self._answer_wanted = False  # ask for one as soon as the active one is done
        # We cancelled the current answer: no second cancel for it, and the upstream's "no
        # active response" (our cancel crossing the answer's own end) is our own race.
        self._cancel_sent = False
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
        self.runtime.register(self)
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

    async def command(self, command: protocol.ClientCommand) -> None:
        if self.state not in OPEN:
            return
        self._last_activity = time.monotonic()
        if isinstance(command, protocol.UserMessage):
            await self._user_message(command.text)  # its own rate (turn_taking.py)
            return
        # Every other message may reach the upstream or the record: playback, interrupt and
        # commit (truncate, cancel, commit frames), extension messages (system_message…).
        if not self._control_rate.allow():
            await self._client_error(
                "rate_limited",
                f"more than {self.config.max_control_messages_per_minute} control messages "
                "a minute (playback, interrupt, commit, extension messages); message ignored",
            )
            return
        if isinstance(command, protocol.Playback):
            self.barge_in.playback(command.item_id, command.played_ms)
        elif isinstance(command, protocol.Interrupt):
            self._interrupt(command.playback)
        elif isinstance(command, protocol.Commit):
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
        """The worker is shutting down (runtime.drain)."""
        await self.end(endings.SERVER_RESTARTING)

    async def end(self, ending: Ending, *, ended_by: str = "") -> None:
        """End the session with a reason: error message, close frame, then close()."""
        if self.state in OPEN:
            self.state = State.ENDING
            self.ending, self.ended_by = ending, ended_by
            self.meter.ended(ending.code)
            log.info("session %s: ending (%s, close %d)", self.id, ending.code, ending.close_code)
            try:
                await self.port.send_text(
                    protocol.error_message(ending.code, ending.message, fatal=True)
                )
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
        await self.port.send_text(protocol.control("connected", greeting=config.greeting))
        await self.port.send_text(
            protocol.control(
                "session_info",
                session_id=str(self.id),
                provider=config.provider_label,
                api=self.upstream.api,
                turn_detection=self.upstream.turn_detection,
                **({"budget": self._budget.info()} if self._budget else {}),  # budgets.py
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
                elif self._expecting() and now - self._last_upstream >= self._stall_s:
                    # Silence is fine while idle; while an answer is expected it is a stall.
                    raise SessionEnded(endings.UPSTREAM_STALLED) from None
            finally:
                self._watch = None

    def _expecting(self) -> bool:
        return self._awaiting_answer or self._answer_active

    def _next_check(self) -> float | None:
        """When the reader must look again without a frame: a stall, an adapter's deadline."""
        due = self.upstream.deadline()
        if self._awaiting_answer or self._answer_active:
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
        get, send = self.outbox.next, self.upstream.send
        try:
            while True:
                await send(await get())
        except Exception as exc:
            if self.upstream.closed_ending(exc) is None:
                raise
            # the reader sees the same close and reports it

    # ------------------------------------------------------------------------------------------
    # The daily budget, after every answer
    # ------------------------------------------------------------------------------------------

    def _check_budget(self) -> None:
        """An answer's usage has been counted: check the user's daily budget before anything
        more goes upstream. Until the check is done the outbox is held (frames and audio wait,
        in order), so no new answer is asked for or spoken into: a session overruns by at most
        the answer that crossed the limit (docs/security.md)."""
        if self._answer_budget is None or self.state is not State.LIVE:
            return
        if self._budget_checking:
            self._budget_again = True
            return
        self._budget_checking = True
        self.outbox.hold()
        self._spawn(self._run_budget_check(self._answer_budget), "budget")

    async def _run_budget_check(
        self, check: Callable[[dict[str, int]], Awaitable[Ending | None]]
    ) -> None:
        while True:
            self._budget_again = False
            ending = None
            try:  # a database that does not answer: the presence guard deals with it
                async with asyncio.timeout(self.config.heartbeat_seconds):
                    ending = await check(self.counters.columns())
            except TimeoutError:
                log.warning("session %s: the daily budget check timed out", self.id)
            if ending is not None:
                log.info("session %s: daily budget used up (after an answer)", self.id)
                await self.end(ending)
                return
            if not self._budget_again:
                break
        self._budget_checking = False
        self.outbox.resume()

    # ------------------------------------------------------------------------------------------
    # Tasks and release
    # ------------------------------------------------------------------------------------------

    async def _warn_session_ending(self, seconds_left: int) -> None:
        await self.port.send_text(protocol.control("session_ending", seconds_left=seconds_left))

    def _wake_reader(self) -> None:
        """The adapter has events due now (e.g. the user started speaking): end the
        reader's wait so it collects them with ``tick``."""
        watch = self._watch
        if watch is not None and not watch.expired():
            watch.reschedule(asyncio.get_running_loop().time())

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Start one of the session's tasks: cancelled at close, and ending the session if it
        fails (never a task that dies alone, leaving a session without its presence, writer
        or clock)."""
        task = asyncio.ensure_future(self._guarded(coro, name))
        task.set_name(f"realtime-{name}-{self.id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    async def _guarded(self, coro: Awaitable[Any], name: str) -> Any:
        try:
            return await coro
        except asyncio.CancelledError:
            raise
        except SessionEnded as ended:  # a task that ends the session on purpose (presence)
            await self.end(ended.ending)
        except Exception:
            log.exception(
                "session %s: its %s task failed", self.id, name, extra={"session_id": str(self.id)}
            )
            await self.end(endings.INTERNAL_ERROR)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # ending the session failed
            log.error(
                "session %s: task %s failed while the session ended",
                self.id,
                task.get_name(),
                exc_info=task.exception(),
                extra={"session_id": str(self.id)},
            )

    def _send_soon(self, text: str) -> None:
        self._spawn(self.port.send_text(text), "notice")

    async def _release(self) -> None:
        self.runtime.unregister(self)
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
