"""What the client has heard, and cutting an answer short (barge-in).

``AudioTracker`` follows the assistant audio the session sends the client: which item is on
air, when its first frame went out and how much was sent; items that were cut are remembered
so their late audio is dropped. ``BargeIn`` turns a cut into a truncation: it waits briefly
for the client's exact ``playback`` figure, else uses the relay's estimate.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from realtime.kernel.counters import BYTES_PER_MS


@dataclass(slots=True)
class AudioItem:
    """One assistant audio part as the client receives it."""

    item_id: str
    content_index: int
    first_sent_at: float
    bytes_sent: int = 0
    bytes_per_ms: int = BYTES_PER_MS  # the session's audio format (μ-law 8 kHz: 8)

    @property
    def sent_ms(self) -> int:
        return self.bytes_sent // self.bytes_per_ms

    def estimated_played_ms(self, now: float) -> int:
        return min(self.sent_ms, max(0, int((now - self.first_sent_at) * 1000)))


@dataclass(frozen=True, slots=True)
class Interruption:
    """An assistant audio item cut off by the user: what to tell the model it said."""

    item_id: str
    content_index: int
    sent_ms: int
    estimated_played_ms: int

    def heard_ms(self, played_ms: int | None) -> int:
        """min(played, sent): the client's figure when it gave one, else the estimate."""
        heard = self.estimated_played_ms if played_ms is None else played_ms
        return max(0, min(heard, self.sent_ms))


class AudioTracker:
    def __init__(self, bytes_per_ms: int = BYTES_PER_MS) -> None:
        self.bytes_per_ms = bytes_per_ms
        self.audio: AudioItem | None = None
        self._cut_items: deque[str] = deque(maxlen=8)

    def is_cut(self, item_id: str) -> bool:
        return item_id in self._cut_items

    def sent(self, item_id: str, content_index: int, size: int, now: float) -> bool:
        """Count audio sent to the client; True when it starts a new item (announce it)."""
        audio = self.audio
        new = audio is None or audio.item_id != item_id or audio.content_index != content_index
        if new:
            audio = self.audio = AudioItem(
                item_id, content_index, first_sent_at=now, bytes_per_ms=self.bytes_per_ms
            )
        audio.bytes_sent += size  # type: ignore[union-attr]
        return new

    def playing_until(self) -> float | None:
        """When the client will have played the assistant audio sent so far (estimated, on
        the ``time.monotonic`` clock), if any was sent."""
        audio = self.audio
        if audio is None or audio.bytes_sent == 0:
            return None
        return audio.first_sent_at + audio.sent_ms / 1000

    def forget(self) -> None:
        """The upstream that sent the audio on air is gone (a renewal): nothing to cut, and
        late audio of that item is not played."""
        if self.audio is not None:
            self._cut_items.append(self.audio.item_id)
            self.audio = None

    def interruption(self, now: float) -> Interruption | None:
        """The audio item the client is still playing, if any (its playback is cut now)."""
        audio = self.audio
        if audio is None or audio.bytes_sent == 0:
            return None
        played = audio.estimated_played_ms(now)
        if played >= audio.sent_ms:
            return None  # everything sent was already heard: nothing to truncate
        self.audio = None
        self._cut_items.append(audio.item_id)
        return Interruption(audio.item_id, audio.content_index, audio.sent_ms, played)


class BargeIn:
    """One pending cut at a time; ``truncate(cut, played_ms)`` is called exactly once per cut."""

    def __init__(
        self, *, wait_ms: int, truncate: Callable[[Interruption, int | None], None]
    ) -> None:
        self._wait = wait_ms / 1000
        self._truncate = truncate
        self._pending: Interruption | None = None
        self._timer: asyncio.TimerHandle | None = None

    def cut(self, cut: Interruption) -> None:
        """An answer was cut short: wait briefly for the client's exact playback figure."""
        if self._pending is not None:
            self.settle(None)
        self._pending = cut
        self._timer = asyncio.get_running_loop().call_later(self._wait, self.settle, None)

    def playback(self, item_id: str, played_ms: int) -> None:
        if self._pending is not None and self._pending.item_id == item_id:
            self.settle(played_ms)

    def settle(self, played_ms: int | None) -> None:
        """Truncate the pending cut now (at the client's figure, else the estimate)."""
        cut, self._pending = self._pending, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if cut is not None:
            self._truncate(cut, played_ms)

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = None
