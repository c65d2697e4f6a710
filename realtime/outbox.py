"""Everything a session sends upstream, in order: coalesced client audio and client events.

Bounded (≈10 s of 20 ms appends): a slow or not-yet-ready upstream can't grow memory. The
consumer's writer task is the only reader, so upstream order is the order things were put.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from realtime.protocol import BYTES_PER_MS, AudioCoalescer, audio_append

MESSAGES = 500  # ≈10 s of 20 ms appends held while the upstream is slow or not ready


class UpstreamOutbox:
    def __init__(self, *, coalesce_ms: int, on_dropped: Callable[[int], None]) -> None:
        self._coalescer = AudioCoalescer(
            flush_bytes=max(2, coalesce_ms * BYTES_PER_MS), max_bytes=MESSAGES * 960
        )
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=MESSAGES)
        self._delay = coalesce_ms / 1000
        self._flush_handle: asyncio.TimerHandle | None = None
        self._on_dropped = on_dropped
        self.get = self._queue.get

    def audio(self, data: bytes) -> None:
        chunk = self._coalescer.feed(data)
        if chunk:
            self._put_audio(chunk)
        elif len(self._coalescer) and self._flush_handle is None:
            # Never hold the tail of an utterance longer than the coalescing window.
            self._flush_handle = asyncio.get_running_loop().call_later(self._delay, self.flush)

    def flush(self) -> None:
        """Send the audio gathered so far (before any event, so order is kept)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if len(self._coalescer):
            self._put_audio(self._coalescer.drain())

    def events(self, events: list[dict[str, Any]]) -> bool:
        """All of these events or none of them; False when there is no room."""
        self.flush()
        if self._queue.maxsize - self._queue.qsize() < len(events):
            return False
        for event in events:
            self._queue.put_nowait(json.dumps(event))
        return True

    def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _put_audio(self, chunk: bytes) -> None:
        try:
            self._queue.put_nowait(audio_append(chunk))
        except asyncio.QueueFull:
            self._on_dropped(len(chunk))
