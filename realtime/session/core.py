"""RelaySession: one client's conversation with one upstream session, whatever the socket.

The session owns the upstream adapter, the outbox and every task it starts, and the
collaborators that do the work, built and wired by ``assembly.py`` (docs/architecture.md, "Why
the session core is shaped this way"): answer state, reader, turn-taking, upstream events, tool
turns, the budget checked after every answer, renewal and its writer, continuity (resume); a
task that fails ends the session (``tasks.py``). It talks to its client through a
``ClientPort`` in neutral terms (``client_events``), which each edge encodes. Lifecycle:

    connecting ──(upstream configured: greeting)──▶ live ──end()──▶ ending ──▶ closed
         └──────────────────────── end() / close() ───────────────────────────┘
                                                     └─detach()─▶ (waits for a resume)

``end(ending)`` tells the client why (error + close code) and closes; ``close()`` releases
everything, once, on every path; ``detach()`` releases the same way but leaves the session
resumable (a socket lost without a clean close, or the worker drains: ``continuity.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from realtime.extensions.client_messages import AddSystemMessage
from realtime.guards import session_limits as limits
from realtime.kernel import commands, endings
from realtime.kernel.counters import BYTES_PER_MS
from realtime.kernel.endings import Ending, SessionEnded
from realtime.ops import metrics
from realtime.session import client_events as client
from realtime.session.answer_budget import Check
from realtime.session.assembly import Hooks, Shared, assemble
from realtime.session.client_events import ClientEvent
from realtime.session.latency import AnswerClock
from realtime.session.ports import Admission, ClientPort, Roster
from realtime.session.states import OPEN, State
from realtime.session.tasks import SessionTasks
from realtime.upstream import UpstreamAdapter

if TYPE_CHECKING:
    from realtime.ops.resume_store import ResumeStore
    from realtime.upstream import UpstreamClients

log = logging.getLogger("realtime.session")


class RelaySession:
    def __init__(
        self,
        *,
        port: ClientPort,
        admitted: Admission,
        clients: UpstreamClients,
        roster: Roster,
        on_heartbeat: Callable[[], Awaitable[None]] | None = None,
        answer_budget: Check | None = None,
        resume_store: ResumeStore | None = None,
    ) -> None:
        """``clients``: the worker's SDK clients (one per upstream configuration);
        ``roster``: the worker's live sessions, which this one joins while it is open;
        ``answer_budget(counters)``: the user's daily budget checked after every answer
        (``budgets.answer_check``): an ending when it is used up; ``resume_store``: where a
        session that may be resumed keeps its state (None: no resume)."""
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
        self.meter = metrics.SessionMeter(self.counters, admitted.edge)
        self.clock = AnswerClock()  # each answer's latency (latency.py)
        self._presence = admitted.presence
        self._presence.latency = self.clock.record  # the row's latency column, per heartbeat
        self._budget = admitted.budget  # budgets (realtime/guards/budgets.py): session_info
        self._on_heartbeat = on_heartbeat
        # user_message has its own rate (turn_taking.py); every other message shares this one
        self._control_rate = limits.MessageRate(config.max_control_messages_per_minute)
        self._last_activity = time.monotonic()
        self._backlog_warned = False
        self._closing: asyncio.Future[None] | None = None
        self.tasks = SessionTasks(session_id=self.id, end=self.end)
        self._spawn = self.tasks.spawn

        # Audio is counted as its duration in PCM16 24 kHz bytes whatever the edge's format
        # (the counters' columns are milliseconds: kernel/counters.py), so μ-law counts ×6.
        self._audio_scale = BYTES_PER_MS // config.audio_bytes_per_ms
        carried = admitted.carried  # a resumed session: what its earlier connections left
        self.resumed = carried is not None
        self._resume_refused = admitted.resume_refused
        self.detaching = False

        # The collaborators (docs/architecture.md, "Why the session core is shaped this way"),
        # built and wired by assembly.py; the session owns their lifetimes.
        parts = assemble(
            Shared(
                session_id=self.id,
                config=config,
                port=port,
                counters=self.counters,
                conversation=self.conversation,
                meter=self.meter,
                clock=self.clock,
                presence=self._presence,
                audio_scale=self._audio_scale,
            ),
            admitted=admitted,
            clients=clients,
            answer_budget=answer_budget,
            resume_store=resume_store,
            started_at=carried.started_at if carried is not None else time.time(),
            hooks=Hooks(
                spawn=self._spawn,
                end=self.end,
                notify=self._send_soon,
                live=lambda: self.state is State.LIVE,
                is_open=lambda: self.state in OPEN,
                audio_dropped=self._audio_dropped,
                answer_counted=self._answer_counted,
                switch=lambda adapter: setattr(self, "upstream", adapter),  # the property below
            ),
        )
        self.outbox, self.history, self.continuity = parts.outbox, parts.history, parts.continuity
        self.budget, self.answers, self.tracker = parts.budget, parts.answers, parts.tracker
        self.reader, self.turns, self.tools = parts.reader, parts.turns, parts.tools
        self.watch, self.events, self.renewal = parts.watch, parts.events, parts.renewal
        self._handlers = self.events.handlers()
        self.upstream = parts.upstream

    @property
    def upstream(self) -> UpstreamAdapter:
        """The upstream adapter the session talks to now."""
        return self._upstream

    @upstream.setter
    def upstream(self, adapter: UpstreamAdapter) -> None:
        """Talk to ``adapter`` from now on (at start; a renewal switches): every collaborator
        that sends or reads follows."""
        self._upstream = adapter
        adapter.wake = self.reader.wake
        self.reader.upstream = self.turns.upstream = self.events.upstream = adapter
        self.tools.upstream = adapter

    # ------------------------------------------------------------------------------------------
    # What the client edge calls
    # ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.meter.opened()
        if self.resumed:
            self.counters.resumes += 1
            self.conversation.add("session", "resumed", "")
        self.roster.register(self)
        self._spawn(self._presence.run(self.ready, on_beat=self._beat), "presence")
        self._spawn(self._run_upstream(), "reader")
        self._spawn(
            limits.session_clock(
                config=self.config,
                elapsed_s=self.continuity.elapsed_s,  # a resumed session's earlier connections
                last_activity=lambda: self._last_activity,
                warn=lambda left: self.port.send_event(client.SessionEnding(left)),
                end=self.end,
            ),
            "clock",
        )

    def audio(self, data: bytes) -> None:
        """One client audio frame (PCM16 24 kHz, or μ-law 8 kHz when the edge asked for
        ``audio_format="pcmu"``): coalesced into the outbox (and, once live,
        written upstream at once when nothing is queued ahead of it)."""
        if self.state not in OPEN:
            return
        self._last_activity = time.monotonic()
        counters = self.counters
        counters.audio_bytes_in += len(data) * self._audio_scale
        counters.frames_in += 1
        self.turns.uncommitted_bytes += len(data)
        self.outbox.audio(data)

    async def command(self, command: commands.ClientCommand) -> None:
        if self.state not in OPEN:
            return
        self._last_activity = time.monotonic()
        turns = self.turns
        if isinstance(command, commands.UserMessage):
            await turns.user_message(command.text)  # its own rate (turn_taking.py)
            return
        # Every other message may reach the upstream or the record: playback, interrupt and
        # commit (truncate, cancel, commit frames), extension messages (system_message…).
        if not self._control_rate.allow():
            await turns.client_error(
                "rate_limited",
                f"more than {self.config.max_control_messages_per_minute} control messages "
                "a minute (playback, interrupt, commit, extension messages); message ignored",
            )
            return
        if isinstance(command, commands.Playback):
            turns.playback(command)
        elif isinstance(command, commands.Interrupt):
            self.tools.cancel()  # "stop" includes the work the answer asked for
            turns.interrupt(command.playback)
        elif isinstance(command, commands.Commit):
            await turns.commit()
        elif isinstance(command, AddSystemMessage):
            turns.enqueue(self.upstream.system_message(command.text))
            self.conversation.add("system", "system_message", command.text)
            self.history.system(command.text)

    async def reject(self, code: str, message: str) -> None:
        """A client frame the relay could not accept (non-fatal: the session goes on)."""
        if self.state not in OPEN:
            return
        self._last_activity = time.monotonic()
        await self.turns.client_error(code, message)

    async def drain(self) -> None:
        """SIGTERM: the client is told 1012; a session that may resume detaches first (state
        and row kept), so that a client resuming at once on another worker finds it whole."""
        if self._may_detach():
            await self.detach(endings.SERVER_RESTARTING)
            await self._tell(endings.SERVER_RESTARTING)
        else:
            await self.end(endings.SERVER_RESTARTING)

    async def hand_over(self) -> None:
        """A resume on another connection takes this session: this client is told 4015 and
        the session lets go of it, writing its state for the new connection."""
        if self.state in OPEN:
            await self._tell(endings.SESSION_RESUMED_ELSEWHERE)
            await self.detach(endings.SESSION_RESUMED_ELSEWHERE)

    def _may_detach(self) -> bool:
        return self.state is State.LIVE and self.continuity.enabled and not self.continuity.lost

    async def _tell(self, ending: Ending) -> None:
        try:
            await self.port.send_event(client.Error(ending.code, ending.message, fatal=True))
            await self.port.close(ending.close_code)
        except Exception:  # the client may already be gone
            pass

    async def detach(self, ending: Ending = endings.CLIENT_DETACHED) -> None:
        """Release everything but leave the session resumable (``continuity.py``): the answer
        in progress is cut where the client was, as a barge-in would."""
        if self.state in OPEN:
            self.detaching = True
            self.ending = ending
            self.meter.ended(ending.code)
            log.info("session %s: detached (%s); resumable for %d s", self.id, ending.code,
                     self.config.resume_seconds)  # fmt: skip
            self.continuity.cut_at_loss(self.tracker)
        await self.close()

    async def end(self, ending: Ending, *, ended_by: str = "") -> None:
        """End the session with a reason: error message, close frame, then close()."""
        if self.state in OPEN:
            self.state = State.ENDING
            self.ending, self.ended_by = ending, ended_by
            self.meter.ended(ending.code)
            log.info("session %s: ending (%s, close %d)", self.id, ending.code, ending.close_code)
            await self._tell(ending)
        await self.close()

    async def client_gone(self, code: int | None) -> None:
        """The client closed the socket (or it broke). A clean close (1000) ends the session;
        any other loss detaches it, to wait for a resume."""
        self.client_close_code = code if isinstance(code, int) else None
        if code != 1000 and self._may_detach():
            await self.detach()
        else:
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
            await self.reader.run(self._handlers, live=lambda: self.state is State.LIVE)
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
            await self.upstream.open(self.history.snapshot())  # a resumed session's so far
        except SessionEnded as failed:
            metrics.count_upstream_error(failed.ending.code)  # connect failures count too
            raise
        self.connect_ms = int((time.monotonic() - started) * 1000)
        config = self.config
        await self.port.send_event(client.Connected(config.greeting))
        token = await self.continuity.token()  # after the greeting: it may go to Redis
        await self.port.send_event(
            client.SessionInfo(
                session_id=str(self.id),
                provider=config.provider_label,
                api=self.upstream.api,
                turn_detection=self.upstream.turn_detection,
                budget=self._budget,
                resume_token=token,
                resumed=self.resumed,
            )
        )
        if self._resume_refused:
            await self.port.send_event(
                client.Error(endings.RESUME_UNAVAILABLE, self._resume_refused)
            )
        log.info("session %s: live on %s after %d ms", self.id, config.provider_label,
                 self.connect_ms)  # fmt: skip
        self.state = State.LIVE
        self.meter.live(self.connect_ms)
        self.clock.connected(self.connect_ms)
        self.ready.set()
        self.renewal.started(self.upstream)  # the writer starts (audio may skip it)
        self.continuity.answer_done()  # the state a resume needs: from the start

    # ------------------------------------------------------------------------------------------
    # Tasks and release
    # ------------------------------------------------------------------------------------------

    def _answer_counted(self) -> None:
        self.budget.answer_counted()
        self.continuity.answer_done()

    async def _beat(self) -> None:
        await self.continuity.beat()
        if self._on_heartbeat is not None:
            await self._on_heartbeat()

    def _send_soon(self, event: ClientEvent) -> None:
        self._spawn(self.port.send_event(event), "notice")

    def _audio_dropped(self, size: int) -> None:
        # Bounded: a stalled upstream must not grow memory; tell the client once.
        self.counters.audio_bytes_dropped += size
        if not self._backlog_warned:
            self._backlog_warned = True
            self._send_soon(
                client.Error(
                    "audio_dropped", "the realtime service is not keeping up; audio dropped"
                )
            )

    async def _release(self) -> None:
        self.roster.unregister(self)
        self.outbox.close()
        self.turns.close()
        await self.tools.close()
        await self.tasks.cancel_all(timeout=2)
        seconds = await self.renewal.close()  # the upstream: the final billed time, for the row
        self.counters.upstream_seconds = max(self.counters.upstream_seconds, seconds)
        ending = self.ending or endings.CLIENT_CLOSED
        by_client = ending in (endings.CLIENT_CLOSED, endings.CLIENT_DETACHED)
        code = self.client_close_code if by_client else ending.close_code
        self.renewal.closed(ending.code)
        if self.detaching:
            self.detaching = await self.continuity.keep(
                self._presence, self.client_close_code, ending.code
            )
        if not self.detaching:
            await self._presence.close(code=code, reason=ending.code, ended_by=self.ended_by)
            await self.continuity.discard()
        self.meter.closed()
        self.state = State.CLOSED
        summary = self.counters.summary() + self.tools.summary()
        log.info("session %s: %s; %s", self.id, "detached" if self.detaching else "closed", summary)
