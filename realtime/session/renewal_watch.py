"""When to renew the upstream session, and the billed time across upstream sessions.

``RenewalWatch`` holds the timer of the upstream session now serving
(``RELAY_UPSTREAM_MAX_SECONDS`` after it went live; by default 3300 s on the Realtime API, on
GPT-Live its ``expires_at`` minus a margin; never later than an announced ``expires_at`` minus
a margin) and finds the next quiet moment once it is due: no answer in progress or asked for,
the user not speaking and no transcript of theirs on its way, no tool call running, the
client done playing the last answer, nothing from the upstream for ``QUIET_GAP_S``. If none
comes within ``QUIET_DEADLINE_S`` the renewal is forced. The reader asks it (through
``renewal.Renewal``) when to look again; the event handlers tell it when the user speaks.

``BilledTime`` adds up each upstream session's cumulative billed seconds into the session's.
"""

from __future__ import annotations

import asyncio
import time

from realtime.kernel.config import RelayConfig
from realtime.session.answers import Answers
from realtime.session.playback import AudioTracker
from realtime.session.reader import UpstreamReader
from realtime.session.tool_turns import ToolTurns
from realtime.session.turn_taking import TurnTaking
from realtime.upstream import UpstreamAdapter

DEFAULT_MAX_SECONDS = 3300.0  # the Realtime API ends sessions at 60 minutes
EXPIRY_MARGIN_S = 120.0  # renew this long before an announced expiry (at most 10 % of it)
QUIET_GAP_S = 1.0  # a quiet moment: nothing from the upstream for this long (and the rest)
QUIET_DEADLINE_S = 60.0  # due, and no quiet moment came for this long: renew anyway
TRANSCRIPT_WAIT_S = 5.0  # the user stopped speaking: wait this long at most for their words


class RenewalWatch:
    def __init__(
        self,
        *,
        config: RelayConfig,
        answers: Answers,
        turns: TurnTaking,
        tools: ToolTurns,
        tracker: AudioTracker,
        reader: UpstreamReader,
    ) -> None:
        self.config = config
        self.answers = answers
        self.turns = turns
        self.tools = tools
        self.tracker = tracker
        self.reader = reader  # its upstream is the one serving; its last_frame, the last word
        self.opened_at = 0.0  # loop time the current upstream went live
        self._due: float | None = None  # loop time of the next timed renewal
        self._deadline = 0.0  # renew at the latest then, quiet or not
        self._speaking = False
        self._words_due_until = 0.0  # a transcript of the user's is on its way until then

    # ---- what the session tells it -----------------------------------------------------------

    def started(self, adapter: UpstreamAdapter) -> None:
        """An upstream session went live: its timer starts."""
        now = self.opened_at = asyncio.get_running_loop().time()
        age = self._max_age(adapter)
        if age is None:
            self._due = None
            return
        self._due = now + age
        expires = adapter.expires_at
        latest = now + (expires - time.time()) - 1 if expires else float("inf")
        self._deadline = max(self._due, min(self._due + QUIET_DEADLINE_S, latest))

    def later(self, seconds: float) -> None:
        """A timed renewal could not open a new session: try again in ``seconds``."""
        self._due = asyncio.get_running_loop().time() + seconds
        self._deadline = self._due + QUIET_DEADLINE_S

    def speech(self, speaking: bool) -> None:
        self._speaking = speaking
        if not speaking and self.config.transcription_model:
            self._words_due_until = asyncio.get_running_loop().time() + TRANSCRIPT_WAIT_S

    def transcribed(self) -> None:
        self._words_due_until = 0.0

    def turn_lost(self) -> None:
        """The upstream that heard the user is gone: no speech, no words on their way."""
        self._speaking = False
        self._words_due_until = 0.0

    # ---- when ----------------------------------------------------------------------------------

    def next_check(self) -> float | None:
        """When the reader must look again for a timed renewal (loop time), if ever."""
        due = self._due
        if due is None:
            return None
        now = asyncio.get_running_loop().time()
        if now < due:
            return due
        ready = self.quiet_at()
        return self._deadline if ready is None else min(max(due, ready), self._deadline)

    def due(self, now: float) -> bool:
        """A timed renewal should happen now."""
        due = self._due
        if due is None or now < due:
            return False
        if now >= self._deadline:
            return True
        ready = self.quiet_at()
        return ready is not None and now >= ready

    def forced(self, now: float) -> bool:
        """Renewing now cuts something in progress (the deadline came, no quiet moment)."""
        return now >= self._deadline and self.quiet_at() is None

    def quiet_at(self) -> float | None:
        """When the session will be quiet if nothing happens meanwhile; None: not by time."""
        answers, turns = self.answers, self.turns
        if (
            answers.active
            or answers.awaiting
            or answers.wanted
            or self._speaking
            or turns.barge_in.pending
            or self.tools.busy
            or self.reader.upstream.busy()
            or (self.config.turn_detection is None and turns.uncommitted_bytes)
        ):
            return None
        at = max(self.reader.last_frame + QUIET_GAP_S, self._words_due_until)
        playing = self.tracker.playing_until()  # time.monotonic(): the loop's clock too
        return at if playing is None else max(at, playing)

    def _max_age(self, adapter: UpstreamAdapter) -> float | None:
        configured = self.config.upstream_max_seconds
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


class BilledTime:
    """The session's billed upstream seconds: each upstream reports its own session's
    cumulative figure; the sessions that ended are added up."""

    def __init__(self) -> None:
        self._before = 0  # billed seconds of the upstream sessions that ended
        self._current = 0  # billed seconds of the current one

    def billed(self, seconds: int) -> int:
        """The session's billed seconds, given the current upstream's cumulative figure."""
        self._current = max(self._current, seconds)
        return self._before + self._current

    def retired(self) -> int:
        """The current upstream is being replaced: its seconds so far are kept; returns them
        (its final figure may still come: ``late``)."""
        seconds, self._current = self._current, 0
        self._before += seconds
        return seconds

    def late(self, seconds: int, counted: int) -> None:
        """A retired upstream's final figure (``counted``: what ``retired`` kept of it)."""
        if seconds > counted:
            self._before += seconds - counted
