"""Turn-taking on the client's requests: a typed message (cutting an answer in progress), an
interrupt, a manual commit; cutting the answer on air and truncating it where it was heard;
asking the upstream for an answer now or once the active one is done.

``TurnTaking`` is one of the collaborators a ``RelaySession`` (``core.py``) holds. It owns
barge-in (``playback.BargeIn``: a cut waits briefly for the client's exact playback figure),
the typed-message rate and the audio not yet committed; it shares with the session the
answer state, the audio tracker, the outbox and the reader (whose stall clock starts when an
answer is asked for).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from realtime.guards import session_limits as limits
from realtime.kernel import commands
from realtime.kernel.config import RelayConfig
from realtime.kernel.counters import SessionCounters
from realtime.kernel.history import History
from realtime.records.conversation import Conversation
from realtime.session import client_events as client
from realtime.session.answers import Answers
from realtime.session.client_events import ClientEvent
from realtime.session.latency import AnswerClock
from realtime.session.outbox import UpstreamOutbox
from realtime.session.playback import AudioTracker, BargeIn, Interruption
from realtime.session.ports import ClientPort
from realtime.session.reader import UpstreamReader
from realtime.upstream import Unsupported, UpstreamAdapter

log = logging.getLogger("realtime.session")


class TurnTaking:
    def __init__(
        self,
        *,
        session_id: Any,
        config: RelayConfig,
        upstream: UpstreamAdapter,
        port: ClientPort,
        notify: Callable[[ClientEvent], None],
        counters: SessionCounters,
        conversation: Conversation,
        history: History,
        answers: Answers,
        tracker: AudioTracker,
        outbox: UpstreamOutbox,
        reader: UpstreamReader,
        clock: AnswerClock,
    ) -> None:
        """``notify(event)``: tell the client without waiting (a task of the session);
        ``clock``: the answers' latency (a typed message or a commit ends the user's turn)."""
        self.id = session_id
        self.config = config
        self.upstream = upstream  # the session switches it (renewal)
        self.port = port
        self.notify = notify
        self.counters = counters
        self.conversation = conversation
        self.history = history  # the conversation as the model knows it (renewal replays it)
        self.answers = answers
        self.tracker = tracker
        self.outbox = outbox
        self.reader = reader
        self.clock = clock
        self.barge_in = BargeIn(wait_ms=config.playback_report_wait_ms, truncate=self.truncate)
        self.uncommitted_bytes = 0  # client audio since the last commit (manual turns)
        self.switching = False  # a renewal is replacing the upstream (renewal.py sets it)
        self._rate = limits.MessageRate(config.max_messages_per_minute)

    # ---- the client's requests ---------------------------------------------------------------

    async def user_message(self, text: str) -> None:
        received = time.monotonic()  # the user's turn ended when the message arrived
        if not self._rate.allow():
            await self.client_error(
                "rate_limited",
                f"more than {self.config.max_messages_per_minute} messages a minute; "
                "message not sent",
            )
            return
        # Typed while an answer is in progress: that answer is cut as a spoken barge-in would
        # be, and the new message is answered once it is done. (Audio of a finished answer
        # that is still playing is the client's to stop: it sends ``interrupt`` first.)
        cut = self.cut_answer() if self.answers.active else []
        frames = cut + self.upstream.user_text(text)
        if not self.ask_for_answer(frames):
            return
        self.clock.turn_ended(received)
        self.counters.text_messages += 1
        self.conversation.add("user", "typed", text)
        self.history.user(text)

    def interrupt(self, playback: commands.Playback | None) -> None:
        """Stop the answer (the session cancels its tool calls too)."""
        frames = self.cut_answer()
        if frames:
            self.enqueue(frames)
        if playback is not None:
            self.barge_in.playback(playback.item_id, playback.played_ms)
        elif self.barge_in.pending:
            self.barge_in.settle(None)

    def playback(self, playback: commands.Playback) -> None:
        self.barge_in.playback(playback.item_id, playback.played_ms)

    async def commit(self) -> None:
        received = time.monotonic()
        if self.config.turn_detection is not None:
            await self.client_error(
                "commit_unavailable",
                "turn detection is on (RELAY_TURN_DETECTION): the service ends turns itself",
            )
            return
        if self.uncommitted_bytes == 0:
            await self.client_error("commit_empty", "no audio since the last commit")
            return
        try:
            frames = self.upstream.commit_audio()
        except Unsupported as exc:
            await self.client_error(exc.code, exc.message)
            return
        if self.ask_for_answer(frames):
            self.uncommitted_bytes = 0
            self.clock.turn_ended(received)

    # ---- answers: cut, ask, truncate ---------------------------------------------------------

    def cut_answer(self) -> list[str]:
        """Stop the answer in progress and cut its audio where the client is (barge-in)."""
        frames: list[str] = []
        if self.answers.cancel():
            frames = self.upstream.cancel_answer()
        self.cut_audio()
        return frames

    def cut_audio(self) -> None:
        """Stop the assistant audio the client is playing: truncate it where it was heard."""
        cut = self.tracker.interruption(time.monotonic())
        if cut is not None:
            self.counters.barge_ins += 1
            self.barge_in.cut(cut)
            self.upstream.answer_cut(cut.item_id)

    def ask_for_answer(self, frames: list[str], ask: list[str] | None = None) -> bool:
        """Send ``frames``, then ask for an answer (``ask``, by default the adapter's request)
        — now, or once the active answer is done where the upstream allows only one."""
        upstream, answers = self.upstream, self.answers
        now = answers.may_ask_now(one_at_a_time=upstream.answers_block_requests)
        if now:
            frames = frames + (upstream.request_answer() if ask is None else ask)
        if not self.outbox.frames(frames):
            self.notify(client.Error("busy", "the relay is busy; message not sent"))
            return False
        self.reader.answer_owed()  # the upstream owes us something now: watch for a stall
        answers.asked(now=now)
        self.reader.rearm()
        return True

    def truncate(self, cut: Interruption, played_ms: int | None) -> None:
        heard_ms = cut.heard_ms(played_ms)
        self.history.answer_heard(cut.item_id, heard_ms, cut.sent_ms)
        if self.switching:  # the answer was the old upstream's: the history says it
            return
        frames = self.upstream.truncate(cut.item_id, cut.content_index, heard_ms)
        if frames:
            self.counters.truncations += 1
            self.enqueue(frames)

    # ---- sending -----------------------------------------------------------------------------

    def enqueue(self, frames: list[str]) -> None:
        if not self.outbox.frames(frames):
            log.warning("session %s: outbox full, dropped %d frame(s)", self.id, len(frames))

    async def client_error(self, code: str, message: str) -> None:
        self.counters.errors += 1
        await self.port.send_event(client.Error(code, message))

    def close(self) -> None:
        self.barge_in.close()
