"""Each answer's latency as its user feels it, measured in the relay (docs/protocol.md:
``response_done``'s ``latency_ms``; docs/operations.md: the histograms).

A user's turn ends when the upstream says the user stopped speaking (``speech_stopped``), when
the client commits its audio (``commit``, push-to-talk) or when a typed ``user_message``
arrives. From there the clock runs to the first reply audio written to the client
(``first_audio``) and to the first text delta written (``first_text``). ``relay`` is the
relay's own share of that first audio: from the moment the reader took the upstream frame
that carried it off the upstream socket to the moment the client frame was written.

Cost on the frame path: one attribute test per reply audio frame (``audio_due``); the clock is
read only for the first audio and the first text of an answer.

An answer that no turn of the user's asked for (the greeting, an ``input_timeout`` prompt) has
no figures; an answer that wrote nothing (a tool call's, one cut before its first word) leaves
the turn's clock running for the answer that follows, so the user's whole wait is what counts.
"""

from __future__ import annotations

import time
from typing import Any

from realtime.kernel.latency import BUCKETS_MS, MAX_KEPT, NONE, Latency, bucket_of


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class AnswerClock:
    """One session's clock (event-loop only). The session calls ``turn_ended`` when the user's
    turn ends, ``speech`` when they start speaking again, ``audio_written``/``text_written``
    after the first reply audio/text of an answer went out (while ``audio_due``/``text_due``),
    and ``answer_done`` when the answer ends: its figures, then the clock is ready for the next."""

    __slots__ = (
        "_audio",
        "_measured",
        "_relay",
        "_text",
        "_turn",
        "audio_due",
        "changed",
        "connect_ms",
        "counts",
        "kept",
        "text_due",
        "turn_end",
    )

    def __init__(self) -> None:
        self.turn_end: float | None = None
        self.audio_due = False
        self.text_due = False
        self._turn = 0  # turns ended so far (an answer's figures belong to one of them)
        self._measured = 0
        self._audio: float | None = None
        self._text: float | None = None
        self._relay: float | None = None
        self.kept: list[list[float | None]] = []  # per answer with figures, oldest first
        # Per figure, answers per bucket of BUCKETS_MS (+1: above the last).
        self.counts: dict[str, list[int]] = {}
        self.connect_ms: int | None = None  # the upstream connect of this connection
        self.changed = False  # since the record was last taken

    def connected(self, connect_ms: int) -> None:
        self.connect_ms = connect_ms
        self.changed = True

    def record(self) -> dict[str, Any] | None:
        """What the session's row keeps (its ``latency`` column: docs/operations.md), when it
        changed since the last call (None: nothing to write)."""
        if not self.changed:
            return None
        self.changed = False
        return {
            "connect_ms": self.connect_ms,
            "answers": [list(row) for row in self.kept],
            "counts": {name: list(row) for name, row in self.counts.items()},
        }

    def turn_ended(self, now: float | None = None) -> None:
        self.turn_end = time.monotonic() if now is None else now
        self._turn += 1
        self.audio_due = self._audio is None
        self.text_due = self._text is None

    def speech(self) -> None:
        """The user speaks (again): no turn has ended; the next ``speech_stopped`` starts one."""
        self.turn_end = None
        self._turn += 1
        self.audio_due = self.text_due = False

    def audio_written(self, received: float) -> None:
        """The first reply audio of the answer was written; ``received``: when the reader took
        the upstream frame that carried it (``time.monotonic``/the loop's clock)."""
        now = time.monotonic()
        self.audio_due = False
        if self.turn_end is not None:
            self._audio = audio = _ms(now - self.turn_end)
            # A share of the wait: never more than it, whole milliseconds' rounding included.
            self._relay = min(round(max(0.0, now - received) * 1000, 3), audio)
            self._measured = self._turn

    def text_written(self) -> None:
        now = time.monotonic()
        self.text_due = False
        if self.turn_end is not None:
            self._text = _ms(now - self.turn_end)
            self._measured = self._turn

    def answer_done(self) -> Latency:
        """The answer ended: its figures (``NONE`` when it wrote nothing after a turn's end)."""
        if self._audio is None and self._text is None:
            return NONE  # the turn's clock runs on for the answer that follows
        figures = Latency(self._audio, self._text, self._relay)
        self._audio = self._text = self._relay = None
        if self._measured == self._turn:  # the turn has its answer; else a newer turn waits
            self.turn_end = None
            self.audio_due = self.text_due = False
        else:
            self.audio_due = self.text_due = self.turn_end is not None
        self._keep(figures)
        return figures

    def _keep(self, figures: Latency) -> None:
        self.changed = True
        kept = self.kept
        kept.append(figures.wire())
        if len(kept) > MAX_KEPT:
            del kept[0]
        for name in ("first_audio", "first_text"):
            value = getattr(figures, name)
            if value is not None:
                row = self.counts.get(name)
                if row is None:
                    row = self.counts[name] = [0] * (len(BUCKETS_MS) + 1)
                row[bucket_of(value)] += 1
