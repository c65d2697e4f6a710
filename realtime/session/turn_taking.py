"""Turn-taking on the client's requests: a typed message (cutting an answer in progress), an
interrupt, a manual commit; cutting the answer on air and truncating it where it was heard;
asking the upstream for an answer now or once the active one is done.

A mixin of ``RelaySession`` (``core.py``), like ``UpstreamEventHandlers``: it uses the
session's upstream adapter, outbox, audio tracker, barge-in state and counters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from realtime.kernel import commands
from realtime.session import client_events as client
from realtime.session.playback import Interruption
from realtime.upstream import Unsupported

if TYPE_CHECKING:
    from realtime.session.core import RelaySession

log = logging.getLogger("realtime.session")


class TurnTaking:
    async def _user_message(self: RelaySession, text: str) -> None:
        if not self._rate.allow():
            await self._client_error(
                "rate_limited",
                f"more than {self.config.max_messages_per_minute} messages a minute; "
                "message not sent",
            )
            return
        # Typed while an answer is in progress: that answer is cut as a spoken barge-in would
        # be, and the new message is answered once it is done. (Audio of a finished answer
        # that is still playing is the client's to stop: it sends ``interrupt`` first.)
        cut = self._cut_answer() if self.answers.active else []
        frames = cut + self.upstream.user_text(text)
        if not self._ask_for_answer(frames):
            return
        self.counters.text_messages += 1
        self.conversation.add("user", "typed", text)

    def _interrupt(self: RelaySession, playback: commands.Playback | None) -> None:
        self.tools.cancel()  # "stop" includes the work the answer asked for
        frames = self._cut_answer()
        if frames:
            self._enqueue(frames)
        if playback is not None:
            self.barge_in.playback(playback.item_id, playback.played_ms)
        elif self.barge_in.pending:
            self.barge_in.settle(None)

    async def _commit(self: RelaySession) -> None:
        if self.config.turn_detection is not None:
            await self._client_error(
                "commit_unavailable",
                "turn detection is on (RELAY_TURN_DETECTION): the service ends turns itself",
            )
            return
        if self._uncommitted_bytes == 0:
            await self._client_error("commit_empty", "no audio since the last commit")
            return
        try:
            frames = self.upstream.commit_audio()
        except Unsupported as exc:
            await self._client_error(exc.code, exc.message)
            return
        if self._ask_for_answer(frames):
            self._uncommitted_bytes = 0

    def _cut_answer(self: RelaySession) -> list[str]:
        """Stop the answer in progress and cut its audio where the client is (barge-in)."""
        frames: list[str] = []
        if self.answers.cancel():
            frames = self.upstream.cancel_answer()
        self._cut_audio()
        return frames

    def _cut_audio(self: RelaySession) -> None:
        """Stop the assistant audio the client is playing: truncate it where it was heard."""
        cut = self.tracker.interruption(time.monotonic())
        if cut is not None:
            self.counters.barge_ins += 1
            self.barge_in.cut(cut)
            self.upstream.answer_cut(cut.item_id)

    def _ask_for_answer(
        self: RelaySession, frames: list[str], ask: list[str] | None = None
    ) -> bool:
        """Send ``frames``, then ask for an answer (``ask``, by default the adapter's request)
        — now, or once the active answer is done where the upstream allows only one."""
        upstream, answers = self.upstream, self.answers
        now = answers.may_ask_now(one_at_a_time=upstream.answers_block_requests)
        if now:
            frames = frames + (upstream.request_answer() if ask is None else ask)
        if not self.outbox.frames(frames):
            self._send_soon(client.Error("busy", "the relay is busy; message not sent"))
            return False
        if not answers.expecting:  # the stall clock starts now, not at the last frame
            self._last_upstream = asyncio.get_running_loop().time()
        answers.asked(now=now)  # the upstream owes us something now: watch for a stall
        self._rearm()
        return True

    def _truncate(self: RelaySession, cut: Interruption, played_ms: int | None) -> None:
        frames = self.upstream.truncate(cut.item_id, cut.content_index, cut.heard_ms(played_ms))
        if frames:
            self.counters.truncations += 1
            self._enqueue(frames)

    def _enqueue(self: RelaySession, frames: list[str]) -> None:
        if not self.outbox.frames(frames):
            log.warning("session %s: outbox full, dropped %d frame(s)", self.id, len(frames))

    def _audio_dropped(self: RelaySession, size: int) -> None:
        # Bounded: a stalled upstream must not grow memory; tell the client once.
        self.counters.audio_bytes_dropped += size
        if not self._backlog_warned:
            self._backlog_warned = True
            self._send_soon(
                client.Error(
                    "audio_dropped", "the realtime service is not keeping up; audio dropped"
                )
            )

    async def _client_error(self: RelaySession, code: str, message: str) -> None:
        self.counters.errors += 1
        await self.port.send_event(client.Error(code, message))
