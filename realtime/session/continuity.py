"""A session that outlives its client's socket: its resume tokens and the state a resume needs.

Each connection of a session gets a fresh single-use token (``session_info``'s
``resume_token``). What a resume needs — the conversation as the model knows it
(``kernel/history.py``), the counters so far, when the session started — is written to the
resume store (``realtime/ops/resume_store.py``: Redis when set, else memory):

- at the end of each answer, and at a heartbeat when the conversation changed since;
- when the client's socket is lost without a clean close (the session **detaches**: its
  upstream is closed, its row says ``detached``, the state waits ``RELAY_RESUME_SECONDS``);
- when the worker drains (SIGTERM): every session detaches, its client is told 1012.

A resume, on this worker or any other, opens a new upstream session with the conversation
replayed (as a renewal does): the upstream costs nothing while the client is away, and a
resume costs one upstream connect and the replayed history's input tokens on the next answer
(docs/operations.md, "Resume").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from realtime.kernel.config import RelayConfig
from realtime.kernel.counters import SessionCounters
from realtime.kernel.history import History, Snapshot, snapshot_from_data, snapshot_to_data

if TYPE_CHECKING:
    from realtime.ops.presence import Presence
    from realtime.ops.resume_store import ResumeStore
    from realtime.session.playback import AudioTracker

log = logging.getLogger("realtime.session")

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class Carried:
    """What a resumed session carries over from its earlier connections."""

    snapshot: Snapshot
    counters: dict[str, int]
    started_at: float  # when the session started (epoch seconds)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Carried:
        """``ValueError`` for a state this relay does not understand."""
        if state.get("v") != STATE_VERSION:
            raise ValueError("unknown state version")
        counters = state.get("counters")
        started = state.get("started_at")
        if not isinstance(counters, dict) or not isinstance(started, int | float):
            raise ValueError("malformed state")
        known = set(SessionCounters.__dataclass_fields__)  # type: ignore[attr-defined]
        return cls(
            snapshot_from_data(state.get("history")),
            {k: v for k, v in counters.items() if k in known and isinstance(v, int) and v >= 0},
            float(started),
        )

    def counters_object(self) -> SessionCounters:
        return SessionCounters(**self.counters)


def binding_of(user: Any) -> str:
    """Whom a token is bound to: the Django user, or anonymous (the token alone)."""
    return f"user:{user.pk}" if user is not None else "anonymous"


class Continuity:
    def __init__(
        self,
        *,
        session_id: Any,
        config: RelayConfig,
        store: ResumeStore | None,
        binding: str,
        owner: str,
        history: History,
        counters: SessionCounters,
        started_at: float,
        spawn: Callable[[Awaitable[Any], str], asyncio.Task[Any]],
    ) -> None:
        """``owner``: this connection's name in the store (its channel name); ``started_at``:
        when the session started (epoch seconds; earlier than now for a resumed one)."""
        self.id = str(session_id)
        self.config = config
        self.store = store if config.resume_seconds > 0 else None
        self.binding = binding
        self.owner = owner
        self.history = history
        self.counters = counters
        self.started_at = started_at
        self._spawn = spawn
        self._saved_version = -1
        self._saving: asyncio.Task[Any] | None = None
        self._again = False
        self.lost = False  # another connection took the session over (its writes fail)

    @property
    def enabled(self) -> bool:
        return self.store is not None

    @property
    def elapsed_s(self) -> float:
        """How long the session has existed (its earlier connections included)."""
        return max(0.0, time.time() - self.started_at)

    def _attached_ttl(self) -> float:
        # Two heartbeats after the last (a SIGKILLed worker's sessions), plus the window.
        return 2 * self.config.heartbeat_seconds + self.config.resume_seconds

    def state(self, *, detached: bool) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "history": snapshot_to_data(self.history.snapshot()),
            "counters": self.counters.as_dict(),
            "started_at": self.started_at,
            "detached_at": time.time() if detached else None,
            "binding": self.binding,
        }

    async def token(self) -> str | None:
        """A fresh single-use token for this connection (None: resume is off or unavailable)."""
        if self.store is None:
            return None
        # Valid as long as the session may last, plus the resume window.
        ttl = (self.config.max_session_seconds or 86_400) + self.config.resume_seconds
        return await self.store.issue(self.id, self.binding, ttl)

    async def save(self, *, detached: bool = False) -> bool:
        """Write the state now (the owner only); True if written."""
        if self.store is None or self.lost:
            return False
        version = self.history.version
        ttl = self.config.resume_seconds if detached else self._attached_ttl()
        written = await self.store.save(
            self.id, self.state(detached=detached), owner=self.owner, ttl=ttl
        )
        if written:
            self._saved_version = version
        elif await self.store.owner(self.id) not in (None, self.owner):
            self.lost = True
        return written

    def answer_done(self) -> None:
        """The end of a turn: write the state in the background (one write at a time)."""
        if self.store is None or self.lost:
            return
        if self._saving is not None and not self._saving.done():
            self._again = True
            return
        self._saving = self._spawn(self._save_in_background(), "resume-save")

    async def _save_in_background(self) -> None:
        while True:
            self._again = False
            await self.save()
            if not self._again:
                return

    async def beat(self) -> None:
        """The heartbeat: write the state if the conversation changed, else keep it alive."""
        if self.store is None or self.lost:
            return
        if self.history.version != self._saved_version:
            await self.save()
        else:
            await self.store.touch(self.id, self.owner, self._attached_ttl())

    async def claim(self) -> None:
        """This connection serves the session from now on (a new or a resumed session)."""
        if self.store is not None:
            await self.store.claim(self.id, self.owner, self._attached_ttl())

    async def discard(self) -> None:
        """The session ended for good: its state goes (its tokens find nothing)."""
        if self.store is not None and not self.lost:
            await self.store.discard(self.id, self.owner)

    # ---- the client's socket is lost ------------------------------------------------------------

    def cut_at_loss(self, tracker: AudioTracker) -> None:
        """The answer in progress is cut where the client was (as a barge-in would): the
        model will remember what the user heard of it, and answers still arriving as far
        as they went."""
        cut = tracker.interruption(time.monotonic())
        if cut is not None:
            self.history.answer_heard(cut.item_id, cut.heard_ms(None), cut.sent_ms)
        self.history.answers_cut()

    async def keep(self, presence: Presence, code: int | None, reason: str) -> bool:
        """Keep the released session for a resume: its state, then its row (detached). False:
        it cannot be kept (the store or the row could not be written); it is closed instead."""
        if not await self.save(detached=True):
            log.warning("session %s: its state could not be kept for a resume; it ends", self.id)
            return False
        return await presence.detach(code=code, reason=reason)
