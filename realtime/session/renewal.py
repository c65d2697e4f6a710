"""Renewal and recovery: the conversation outlives the upstream session.

Every upstream session ends: the Realtime API's after 60 minutes (``session_expired``),
GPT-Live's at its ``expires_at``, and any of them when its socket drops or stalls. The relay
knows the whole conversation (``realtime.kernel.history``), so it can open a new upstream session
with the same settings, give it the conversation so far, and switch to it without the client
noticing anything but one ``{"type":"control","action":"upstream_renewed"}``: same socket,
same ``session_id``, same registry row, counters that add up.

- **Renewal on a timer**: ``RELAY_UPSTREAM_MAX_SECONDS`` after an upstream session went live
  (by default 3300 s on the Realtime API; on GPT-Live its ``expires_at`` minus a margin; never
  later than its ``expires_at`` minus a margin on either), at the next quiet moment: no answer
  in progress or asked for, the user not speaking and no transcript of theirs on its way, no
  tool call running, the client done playing the last answer, nothing from the upstream for
  ``QUIET_GAP_S``. If none comes within ``QUIET_DEADLINE_S``, it renews anyway (an answer in
  progress then ends with ``response_done`` ``cancelled``/``upstream_renewal``).
- **Recovery**: ``upstream_closed``, ``upstream_session_expired`` and ``upstream_stalled`` in
  the middle of a session start the same switch, up to ``RELAY_UPSTREAM_RETRIES`` attempts
  with back-off, before the session ends with that code. An answer the failure cut ends with
  ``response_done`` ``failed`` (reason: the code). Never retried: authentication (401/403),
  rejected settings, a content-policy close, budgets and limits.

The switch runs in the session's reader task (nothing else reads the upstream): the writer
stops, the commands still queued are set aside (the history carries what they said), client
audio keeps queueing in the outbox (bounded, ≈10 s; beyond that it is dropped and the client
told once) and goes to the new session once it is live.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from realtime.edge import protocol
from realtime.kernel import endings
from realtime.kernel.endings import SessionEnded
from realtime.kernel.events import ResponseDone, UsageReport
from realtime.kernel.history import Snapshot
from realtime.ops import metrics
from realtime.session.states import State
from realtime.upstream import UpstreamAdapter, adapter_for

if TYPE_CHECKING:
    from realtime.session.core import RelaySession

log = logging.getLogger("realtime.session")

DEFAULT_MAX_SECONDS = 3300.0  # the Realtime API ends sessions at 60 minutes
EXPIRY_MARGIN_S = 120.0  # renew this long before an announced expiry (at most 10 % of it)
QUIET_GAP_S = 1.0  # a quiet moment: nothing from the upstream for this long (and the rest)
QUIET_DEADLINE_S = 60.0  # due, and no quiet moment came for this long: renew anyway
TRANSCRIPT_WAIT_S = 5.0  # the user stopped speaking: wait this long at most for their words
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
    def __init__(self, session: RelaySession) -> None:
        self.session = session
        config = session.config
        self.retries = config.upstream_retries
        self.switching = False  # a switch is under way: truncations are not sent upstream
        self.pending: UpstreamAdapter | None = None  # being opened; closed on release
        self.spans: list[UpstreamSpan] = []
        self._due: float | None = None  # loop time of the next timed renewal
        self._deadline = 0.0  # renew at the latest then, quiet or not
        self._opened_at = 0.0  # loop time the current upstream went live
        self._attempts = 0  # recovery attempts in a row
        self._speaking = False
        self._words_due_until = 0.0  # a transcript of the user's is on its way until then
        self._seconds_before = 0  # billed seconds of the upstream sessions that ended
        self._seconds = 0  # billed seconds of the current one

    # ---- what the session tells it -----------------------------------------------------------

    def started(self, adapter: UpstreamAdapter) -> None:
        """An upstream session went live: its timer starts."""
        loop = asyncio.get_running_loop()
        now = self._opened_at = loop.time()
        self.spans.append(UpstreamSpan(len(self.spans) + 1, timezone.now(), adapter.session_id))
        age = self._max_age(adapter)
        if age is None:
            self._due = None
            return
        self._due = now + age
        expires = adapter.expires_at
        latest = now + (expires - time.time()) - 1 if expires else float("inf")
        self._deadline = max(self._due, min(self._due + QUIET_DEADLINE_S, latest))

    def speech(self, speaking: bool) -> None:
        self._speaking = speaking
        if not speaking and self.session.config.transcription_model:
            self._words_due_until = asyncio.get_running_loop().time() + TRANSCRIPT_WAIT_S

    def transcribed(self) -> None:
        self._words_due_until = 0.0

    def billed(self, seconds: int) -> int:
        """The session's billed seconds, given the current upstream's cumulative figure."""
        self._seconds = max(self._seconds, seconds)
        return self._seconds_before + self._seconds

    def closed(self, reason: str) -> None:
        """The session ended: the last upstream span ends with it."""
        if self.spans and not self.spans[-1].ended:
            self.spans[-1].ended_at = timezone.now()
            self.spans[-1].ended = reason
        self._publish()

    async def close(self) -> None:
        """Release an upstream still being opened (the session ended mid-switch)."""
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending.close()

    # ---- when ----------------------------------------------------------------------------------

    def next_check(self) -> float | None:
        """When the reader must look again for a timed renewal (loop time), if ever."""
        due = self._due
        if due is None:
            return None
        now = asyncio.get_running_loop().time()
        if now < due:
            return due
        ready = self._quiet_at()
        return self._deadline if ready is None else min(max(due, ready), self._deadline)

    def due(self, now: float) -> bool:
        """A timed renewal should happen now."""
        due = self._due
        if due is None or now < due:
            return False
        if now >= self._deadline:
            return True
        ready = self._quiet_at()
        return ready is not None and now >= ready

    def _quiet_at(self) -> float | None:
        """When the session will be quiet if nothing happens meanwhile; None: not by time."""
        s = self.session
        if (
            s._answer_active
            or s._awaiting_answer
            or s._answer_wanted
            or self._speaking
            or s.barge_in.pending
            or s.tools.busy
            or s.upstream.busy()
            or (s.config.turn_detection is None and s._uncommitted_bytes)
        ):
            return None
        at = max(s._last_upstream + QUIET_GAP_S, self._words_due_until)
        playing = s.tracker.playing_until()  # time.monotonic(): the loop's clock too
        return at if playing is None else max(at, playing)

    def _max_age(self, adapter: UpstreamAdapter) -> float | None:
        configured = self.session.config.upstream_max_seconds
        if configured == 0:
            return None
        expires = adapter.expires_at
        by_expiry = None
        if expires:
            lifetime = max(0.0, expires - time.time())
            by_expiry = lifetime - min(EXPIRY_MARGIN_S, lifetime * 0.1)
        if configured is None:
            if adapter.api != "realtime" and by_expiry is not None:
                return by_expiry
            configured = DEFAULT_MAX_SECONDS
        return configured if by_expiry is None else min(configured, by_expiry)

    # ---- renewal and recovery ------------------------------------------------------------------

    async def renew(self) -> None:
        """The timer: switch to a new upstream session now. If none can be opened the old one
        goes on (tried again in ``RETRY_LATER_S``); authentication or settings refused end
        the session."""
        s = self.session
        loop = asyncio.get_running_loop()
        now = loop.time()
        forced = now >= self._deadline and self._quiet_at() is None
        old = s.upstream
        commands = await self._pause()
        snapshot = s.history.snapshot()
        if forced:
            await self._cut_in_progress("cancelled", "upstream_renewal")
        try:
            replayed = await self._open(snapshot)
        except SessionEnded as failed:
            metrics.count_renewal_failure(MAX_AGE)
            self.switching = False
            if failed.ending.code in (
                endings.UPSTREAM_AUTH_FAILED.code,
                endings.UPSTREAM_SESSION_REJECTED.code,
            ):
                log.warning(
                    "session %s: upstream renewal refused (%s); ending", s.id, failed.ending.code
                )
                raise
            log.warning(
                "session %s: upstream renewal failed (%s); the current upstream goes on, "
                "next try in %g s",
                s.id,
                failed.ending.message,
                RETRY_LATER_S,
            )
            s.outbox.put_back(commands)
            self._resume(old)
            self._due = loop.time() + RETRY_LATER_S
            self._deadline = self._due + QUIET_DEADLINE_S
            return
        self._retire(old, MAX_AGE)
        self._switched(replayed, MAX_AGE)
        s.counters.upstream_renewals += 1
        log.info(
            "session %s: upstream renewed (%s) after %d ms; upstream session %d, %d item(s) "
            "replayed",
            s.id,
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
        s = self.session
        reason = failure.ending.code
        if (
            reason not in RECOVERABLE
            or failure.upstream_code in NOT_RECOVERED
            or s.state is not State.LIVE
            or not self.retries
        ):
            return False
        loop = asyncio.get_running_loop()
        started = loop.time()
        if started - self._opened_at >= STABLE_S:
            self._attempts = 0  # it served a while: a new failure, a new count
        if self._attempts >= self.retries:
            log.warning(
                "session %s: %s again right after %d recovery attempt(s); ending",
                s.id,
                reason,
                self._attempts,
            )
            return False
        old = s.upstream
        await self._pause()  # what was queued for the old upstream: in the history
        snapshot = s.history.snapshot()
        await self._cut_in_progress("failed", reason)
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
                    s.id,
                    self._attempts,
                    self.retries,
                    failed.ending.message,
                )
                if failed.ending.code != endings.UPSTREAM_UNAVAILABLE.code:
                    raise  # authentication or settings refused: retrying will not help
                continue
            self._switched(replayed, reason)
            s.counters.upstream_recoveries += 1
            log.info(
                "session %s: upstream recovered from %s (attempt %d of %d) in %d ms; upstream "
                "session %d, %d item(s) replayed",
                s.id,
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
            s.id,
            reason,
            self._attempts,
        )
        self.switching = False
        return False

    # ---- the switch, step by step --------------------------------------------------------------

    async def _pause(self) -> list[str]:
        """Stop writing to the current upstream; client audio keeps queueing. Returns the
        commands that were queued (their content is in the history)."""
        s = self.session
        self.switching = True
        s.outbox.write_now = None
        await s.stop_writer()
        return s.outbox.take_commands(lambda frame: frame.startswith(s.upstream.audio_prefix))

    def _resume(self, adapter: UpstreamAdapter) -> None:
        s = self.session
        s.outbox.rebind(adapter.audio_frame)
        s.start_writer()
        s.outbox.write_now = adapter.write_now
        self.switching = False

    async def _cut_in_progress(self, status: str, reason: str) -> None:
        """What the old upstream was doing ends here: an answer is reported ended (the
        client stops waiting for it), tool calls are cancelled, a pending truncation only
        cuts the history, and an answer that was asked for but not started is asked again."""
        s = self.session
        asked = s._awaiting_answer or s._answer_wanted
        s.tools.cancel()
        s.barge_in.settle(None)
        if s._answer_active:
            s._answer_wanted = False  # asked again below, once
            await s._handlers[ResponseDone](ResponseDone(s._answer_id, status, reason))
        s.history.answers_cut()
        s.conversation.close()  # the record keeps cut answers as far as they went
        s.tracker.forget()
        s._answer_active = s._awaiting_answer = s._answer_wanted = s._cancel_sent = False
        self._speaking = False
        self._words_due_until = 0.0
        if asked and s.upstream.request_answer():  # GPT-Live answers on its own: no request
            s._ask_for_answer([])

    async def _open(self, snapshot: Snapshot) -> int:
        """Open a new upstream session with the conversation so far; returns how many items
        were replayed. Raises ``SessionEnded`` if it cannot be opened."""
        s = self.session
        adapter = adapter_for(s.config, s.runtime.clients, s.upstream.tools)
        adapter.follow(s.upstream)
        adapter.wake = s._wake_reader
        s.outbox.rebind(adapter.audio_frame)  # audio from now on is for the new session
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
        s.upstream = adapter
        s.tools.upstream = adapter
        return len(snapshot.items)

    def _retire(self, old: UpstreamAdapter, reason: str) -> None:
        """The old upstream session's span ends; it is closed in the background (bounded:
        GPT-Live waits for its final usage), and its billed time is kept."""
        span = self.spans[-1] if self.spans else None
        if span is not None and not span.ended:
            span.ended_at, span.ended = timezone.now(), reason
        seconds, self._seconds = self._seconds, 0
        self._seconds_before += seconds
        self.session._spawn(self._close(old, seconds), "retire")

    async def _close(self, old: UpstreamAdapter, seconds: int) -> None:
        # Shielded: a session that ends meanwhile must not leave the socket half closed.
        for event in await asyncio.shield(old.close()):
            if isinstance(event, UsageReport) and event.seconds > seconds:
                self._seconds_before += event.seconds - seconds
                seconds = event.seconds

    def _switched(self, replayed: int, reason: str) -> None:
        s = self.session
        adapter = s.upstream
        s._last_upstream = asyncio.get_running_loop().time()
        self._resume(adapter)
        self.started(adapter)
        self._publish()
        metrics.count_renewal(reason)

    async def _announce(self, reason: str) -> None:
        await self.session.port.send_text(
            protocol.control("upstream_renewed", reason=reason, upstream=len(self.spans))
        )

    def _publish(self) -> None:
        """The registry row lists the upstream sessions once there was more than one."""
        if len(self.spans) > 1:
            self.session._presence.upstreams = [span.row() for span in self.spans]
