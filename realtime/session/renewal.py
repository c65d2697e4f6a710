"""Renewal and recovery: the conversation outlives the upstream session.

Every upstream session ends: the Realtime API's after 60 minutes (``session_expired``),
GPT-Live's at its ``expires_at``, and any of them when its socket drops or stalls. The relay
knows the whole conversation (``realtime.kernel.history``), so it can open a new upstream session
with the same settings, give it the conversation so far, and switch to it without the client
noticing anything but one ``UpstreamRenewed`` (``{"type":"control","action":"upstream_renewed"}``
in the browser protocol): same socket,
same ``session_id``, same registry row, counters that add up.

- **Renewal on a timer**: ``RELAY_UPSTREAM_MAX_SECONDS`` after an upstream session went live,
  at the next quiet moment (``renewal_watch.py`` says when). If none comes in time it renews
  anyway (an answer in progress then ends with ``response_done`` ``cancelled``/
  ``upstream_renewal``).
- **Recovery**: ``upstream_closed``, ``upstream_session_expired`` and ``upstream_stalled`` in
  the middle of a session start the same switch, up to ``RELAY_UPSTREAM_RETRIES`` attempts
  with back-off, before the session ends with that code. An answer the failure cut ends with
  ``response_done`` ``failed`` (reason: the code). Never retried: authentication (401/403),
  rejected settings, a content-policy close, budgets and limits.

The switch runs in the session's reader task (``reader.py`` calls it; nothing else reads the
upstream): the writer
stops, the commands still queued are set aside (the history carries what they said), client
audio keeps queueing in the outbox (bounded, ≈10 s; beyond that it is dropped and the client
told once) and goes to the new session once it is live.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.counters import SessionCounters
from realtime.kernel.endings import SessionEnded
from realtime.kernel.events import UsageReport
from realtime.kernel.history import History, Snapshot
from realtime.ops import metrics
from realtime.session import client_events as client
from realtime.session.outbox import UpstreamOutbox
from realtime.session.ports import ClientPort
from realtime.session.reader import UpstreamReader
from realtime.session.renewal_watch import RenewalWatch
from realtime.session.turn_taking import TurnTaking
from realtime.session.upstream_events import UpstreamEvents
from realtime.session.writer import UpstreamWriter
from realtime.upstream import UpstreamAdapter, UpstreamClients, adapter_for

if TYPE_CHECKING:
    from realtime.ops.presence import Presence

log = logging.getLogger("realtime.session")

RETRY_LATER_S = 30.0  # a timed renewal that could not open a new session tries again then
STABLE_S = 30.0  # an upstream that served this long starts a new count of recovery attempts

MAX_AGE = "max_age"  # the reason of a renewal on the timer
RECOVERABLE = frozenset(
    {
        endings.UPSTREAM_CLOSED.code,
        endings.UPSTREAM_SESSION_EXPIRED.code,
        endings.UPSTREAM_STALLED.code,
    }
)
NOT_RECOVERED = frozenset({"session_closed_content"})  # a safety filter ended it: final


def backoff(attempt: int) -> float:
    """Seconds to wait before recovery attempt ``attempt`` (1, 2, …): 0.25, 1, 4, 10, 10 …"""
    return min(10.0, 0.25 * 4 ** (attempt - 1))


@dataclass
class UpstreamSpan:
    """One upstream session that served the conversation (the admin lists them)."""

    number: int
    started_at: Any  # datetime
    upstream_id: str = ""
    ended_at: Any = None
    ended: str = ""  # why: max_age, an upstream ending's code, or the session's own ending

    def row(self) -> dict[str, Any]:
        return {
            "n": self.number,
            "id": self.upstream_id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "ended": self.ended,
        }


class Renewal:
    def __init__(
        self,
        *,
        session_id: Any,
        config: RelayConfig,
        clients: UpstreamClients,
        switch: Callable[[UpstreamAdapter], None],
        watch: RenewalWatch,
        reader: UpstreamReader,
        outbox: UpstreamOutbox,
        history: History,
        turns: TurnTaking,
        events: UpstreamEvents,
        counters: SessionCounters,
        port: ClientPort,
        presence: Presence,
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
        live: Callable[[], bool],
    ) -> None:
        """``switch(adapter)``: the session talks to ``adapter`` from now on (every
        collaborator follows); ``events``: what the old upstream was doing ends there
        (``upstream_lost``), and its billed time is kept; ``live()``: the session is live.
        The reader is given this renewal: it renews on its timer and recovers from failures."""
        self.id = session_id
        self.config = config
        self.clients = clients
        self._switch = switch
        self.watch = watch
        self.reader = reader  # its upstream is the one serving now
        self.outbox = outbox
        self.writer = UpstreamWriter(outbox=outbox, spawn=spawn, live=live)
        self.history = history
        self.turns = turns
        self.events = events
        self.billed = events.billed
        self.counters = counters
        self.port = port
        self.presence = presence
        self._spawn = spawn
        self._live = live
        self.retries = config.upstream_retries
        self.pending: UpstreamAdapter | None = None  # being opened; closed on release
        self.spans: list[UpstreamSpan] = []
        self._attempts = 0  # recovery attempts in a row
        reader.renewal = self

    # ---- what the session and its reader ask -----------------------------------------------------

    def started(self, adapter: UpstreamAdapter) -> None:
        """An upstream session went live: its writer, its span and its timer start."""
        self.writer.start(adapter)
        self.spans.append(UpstreamSpan(len(self.spans) + 1, timezone.now(), adapter.session_id))
        self.watch.started(adapter)

    def next_check(self) -> float | None:
        return self.watch.next_check()

    def due(self, now: float) -> bool:
        return self.watch.due(now)

    def closed(self, reason: str) -> None:
        """The session ended: the last upstream span ends with it."""
        if self.spans and not self.spans[-1].ended:
            self.spans[-1].ended_at = timezone.now()
            self.spans[-1].ended = reason
        self._publish()

    async def close(self) -> int:
        """Close the upstream serving now, and one still being opened (the session ended
        mid-switch); returns the session's billed upstream seconds."""
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending.close()
        seconds = 0
        for event in await self.reader.upstream.close():
            if isinstance(event, UsageReport):  # the final billed time
                seconds = self.billed.billed(event.seconds)
        return seconds

    # ---- renewal and recovery ------------------------------------------------------------------

    async def renew(self) -> None:
        """The timer: switch to a new upstream session now. If none can be opened the old one
        goes on (tried again in ``RETRY_LATER_S``); authentication or settings refused end
        the session."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        forced = self.watch.forced(now)
        old = self.reader.upstream
        commands = await self._pause()
        snapshot = self.history.snapshot()
        if forced:
            await self.events.upstream_lost("cancelled", "upstream_renewal")
        try:
            replayed = await self._open(snapshot)
        except SessionEnded as failed:
            metrics.count_renewal_failure(MAX_AGE)
            self.turns.switching = False
            if failed.ending.code in (
                endings.UPSTREAM_AUTH_FAILED.code,
                endings.UPSTREAM_SESSION_REJECTED.code,
            ):
                log.warning(
                    "session %s: upstream renewal refused (%s); ending", self.id, failed.ending.code
                )
                raise
            log.warning(
                "session %s: upstream renewal failed (%s); the current upstream goes on, "
                "next try in %g s",
                self.id,
                failed.ending.message,
                RETRY_LATER_S,
            )
            self.outbox.put_back(commands)
            self._resume(old)
            self.writer.start(old)
            self.watch.later(RETRY_LATER_S)
            return
        self._retire(old, MAX_AGE)
        self._switched(replayed, MAX_AGE)
        self.counters.upstream_renewals += 1
        log.info(
            "session %s: upstream renewed (%s) after %d ms; upstream session %d, %d item(s) "
            "replayed",
            self.id,
            MAX_AGE,
            int((loop.time() - now) * 1000),
            len(self.spans),
            len(snapshot.items),
        )
        await self._announce(MAX_AGE)

    async def recover(self, failure: SessionEnded) -> bool:
        """The upstream failed mid-session: switch to a new one (bounded attempts, back-off).
        False: not recoverable, or every attempt failed (the session ends with ``failure``);
        raises ``SessionEnded`` when a new session is refused (authentication, settings)."""
        reason = failure.ending.code
        if (
            reason not in RECOVERABLE
            or failure.upstream_code in NOT_RECOVERED
            or not self._live()
            or not self.retries
        ):
            return False
        loop = asyncio.get_running_loop()
        started = loop.time()
        if started - self.watch.opened_at >= STABLE_S:
            self._attempts = 0  # it served a while: a new failure, a new count
        if self._attempts >= self.retries:
            log.warning(
                "session %s: %s again right after %d recovery attempt(s); ending",
                self.id,
                reason,
                self._attempts,
            )
            return False
        old = self.reader.upstream
        await self._pause()  # what was queued for the old upstream: in the history
        snapshot = self.history.snapshot()
        await self.events.upstream_lost("failed", reason)
        self._retire(old, reason)
        while self._attempts < self.retries:
            self._attempts += 1
            await asyncio.sleep(backoff(self._attempts))
            try:
                replayed = await self._open(snapshot)
            except SessionEnded as failed:
                metrics.count_renewal_failure(reason)
                log.warning(
                    "session %s: upstream recovery attempt %d of %d failed: %s",
                    self.id,
                    self._attempts,
                    self.retries,
                    failed.ending.message,
                )
                if failed.ending.code != endings.UPSTREAM_UNAVAILABLE.code:
                    raise  # authentication or settings refused: retrying will not help
                continue
            self._switched(replayed, reason)
            self.counters.upstream_recoveries += 1
            log.info(
                "session %s: upstream recovered from %s (attempt %d of %d) in %d ms; upstream "
                "session %d, %d item(s) replayed",
                self.id,
                reason,
                self._attempts,
                self.retries,
                int((loop.time() - started) * 1000),
                len(self.spans),
                len(snapshot.items),
            )
            await self._announce(reason)
            return True
        log.warning(
            "session %s: could not recover the upstream from %s (%d attempt(s)); ending",
            self.id,
            reason,
            self._attempts,
        )
        self.turns.switching = False
        return False

    # ---- the switch, step by step --------------------------------------------------------------

    async def _pause(self) -> list[str]:
        """Stop writing to the current upstream; client audio keeps queueing. Returns the
        commands that were queued (their content is in the history)."""
        self.turns.switching = True  # a truncation now only cuts the history
        await self.writer.stop()
        prefix = self.reader.upstream.audio_prefix
        return self.outbox.take_commands(lambda frame: frame.startswith(prefix))

    def _resume(self, adapter: UpstreamAdapter) -> None:
        self.outbox.rebind(adapter.audio_frame)
        self.turns.switching = False

    async def _open(self, snapshot: Snapshot) -> int:
        """Open a new upstream session with the conversation so far; returns how many items
        were replayed. Raises ``SessionEnded`` if it cannot be opened."""
        current = self.reader.upstream
        adapter = adapter_for(self.config, self.clients, current.tools)
        adapter.follow(current)
        adapter.wake = self.reader.wake
        self.outbox.rebind(adapter.audio_frame)  # audio from now on is for the new session
        self.pending = adapter
        try:
            await adapter.open(snapshot)
        except BaseException as exc:
            await adapter.close()
            self.pending = None
            if isinstance(exc, SessionEnded):
                metrics.count_upstream_error(exc.ending.code)
                raise
            ending = adapter.closed_ending(exc) if isinstance(exc, Exception) else None
            if ending is None:
                raise
            raise SessionEnded(endings.UPSTREAM_UNAVAILABLE.because(ending.message)) from None
        self.pending = None
        self._switch(adapter)
        return len(snapshot.items)

    def _retire(self, old: UpstreamAdapter, reason: str) -> None:
        """The old upstream session's span ends; it is closed in the background (bounded:
        GPT-Live waits for its final usage), and its billed time is kept."""
        span = self.spans[-1] if self.spans else None
        if span is not None and not span.ended:
            span.ended_at, span.ended = timezone.now(), reason
        self._spawn(self._close(old, self.billed.retired()), "retire")

    async def _close(self, old: UpstreamAdapter, counted: int) -> None:
        # Shielded: a session that ends meanwhile must not leave the socket half closed.
        for event in await asyncio.shield(old.close()):
            if isinstance(event, UsageReport):
                self.billed.late(event.seconds, counted)
                counted = max(counted, event.seconds)

    def _switched(self, replayed: int, reason: str) -> None:
        adapter = self.reader.upstream
        self.reader.last_frame = asyncio.get_running_loop().time()
        self._resume(adapter)
        self.started(adapter)  # its writer too
        self._publish()
        metrics.count_renewal(reason)

    async def _announce(self, reason: str) -> None:
        await self.port.send_event(client.UpstreamRenewed(reason, len(self.spans)))

    def _publish(self) -> None:
        """The registry row lists the upstream sessions once there was more than one."""
        if len(self.spans) > 1:
            self.presence.upstreams = [span.row() for span in self.spans]
