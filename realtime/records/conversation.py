"""What was said in a session, recorded off the audio path and written in batches.

A session gathers ``Entry`` objects in memory as things happen (typed and spoken user turns,
the assistant's answers as text, tool calls, system messages, how the session ended); its
``Presence`` writes what has gathered on every heartbeat and at close, in one bulk insert
(never a database write per frame or per event). No audio is recorded, only text. Off when
``RELAY_STORE_TRANSCRIPTS`` is false.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

MAX_TEXT = 20_000  # one entry's text (an answer, a typed message) is cut beyond this


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    at: datetime
    role: str  # user | assistant | system | tool | session
    kind: str  # typed | spoken | answer | call | system_message | ended
    text: str = ""
    item_id: str = ""
    data: dict[str, Any] = field(default_factory=dict)


class Conversation:
    """One session's record: entries in order, handed to the writer in batches."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._seq = itertools.count(1)
        self._pending: list[Entry] = []
        self._answers: dict[str, list[str]] = {}  # part id → text so far

    def continue_after(self, seq: int) -> None:
        """A resumed session: its record goes on after the entries its earlier connections
        wrote (``seq``: the last one written)."""
        self._seq = itertools.count(seq + 1)

    def add(self, role: str, kind: str, text: str = "", item_id: str = "", **data: Any) -> None:
        if self.enabled:
            entry = Entry(
                next(self._seq), timezone.now(), role, kind, text[:MAX_TEXT], item_id, data
            )
            self._pending.append(entry)

    def answer_delta(self, part_id: str, delta: str) -> None:
        if self.enabled:
            self._answers.setdefault(part_id, []).append(delta)

    def answer_done(self, part_id: str) -> None:
        parts = self._answers.pop(part_id, None)
        if parts:
            self.add("assistant", "answer", "".join(parts), item_id=part_id)

    def take(self) -> list[Entry]:
        """What gathered since the last call (for the writer)."""
        pending, self._pending = self._pending, []
        return pending

    def close(self) -> None:
        """Answers cut off mid-way are recorded as far as they went."""
        for part_id in list(self._answers):
            self.answer_done(part_id)
