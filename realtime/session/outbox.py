"""Everything a session sends upstream, in order: coalesced client audio and commands.

Bounded (≈10 s of 20 ms appends): a slow or not-yet-ready upstream can't grow memory. The
session's writer task is the only reader, so upstream order is the order things were put.
Once the upstream is live, an audio append finding the queue empty is written at once
(``write_now``) instead of waking the writer: nothing can be ahead of it, and a frame the
writer took from the queue was written before the writer could wait again. While the
session checks the user's daily budget after an answer, the outbox is held: nothing is
written, everything queues in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from realtime.kernel.counters import BYTES_PER_MS

MESSAGES = 500  # ≈10 s of 20 ms appends held while the upstream is slow or not ready


class AudioCoalescer:
    """Joins tiny client audio frames into upstream appends without splitting a sample.

    ``feed`` returns a chunk once ``flush_bytes`` have gathered; the outbox flushes the
    remainder on a short timer so the tail of an utterance is never held back.
    """

    def __init__(self, flush_bytes: int, max_bytes: int, sample_bytes: int = 2) -> None:
        """``sample_bytes``: 2 for PCM16, 1 for G.711 (any length is whole samples)."""
        self.flush_bytes = max(sample_bytes, flush_bytes - flush_bytes % sample_bytes)
        self.max_bytes = max_bytes
        self._whole = sample_bytes == 1
        self._buffer = bytearray()
        self._odd = b""
        self.dropped_bytes = 0

    def __len__(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> bytes | None:
        if self._odd:
            data = self._odd + data
            self._odd = b""
        if len(data) % 2 and not self._whole:
            self._odd = data[-1:]
            data = data[:-1]
        room = self.max_bytes - len(self._buffer)
        if len(data) > room:
            # Bounded: audio held back while upstream is not ready is capped (oldest kept).
            self.dropped_bytes += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._buffer += data
        if len(self._buffer) >= self.flush_bytes:
            return self.drain()
        return None

    def drain(self) -> bytes:
        chunk = bytes(self._buffer)
        self._buffer.clear()
        return chunk


class UpstreamOutbox:
    def __init__(
        self,
        *,
        coalesce_ms: int,
        encode_audio: Callable[[bytes], str],
        on_dropped: Callable[[int], None],
        bytes_per_ms: int = BYTES_PER_MS,
    ) -> None:
        self._coalescer = AudioCoalescer(
            flush_bytes=max(2, coalesce_ms * bytes_per_ms),
            max_bytes=MESSAGES * 20 * bytes_per_ms,
            sample_bytes=1 if bytes_per_ms < BYTES_PER_MS else 2,  # μ-law: a byte a sample
        )
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=MESSAGES)
        self._delay = coalesce_ms / 1000
        self._flush_handle: asyncio.TimerHandle | None = None
        self._encode = encode_audio
        self._on_dropped = on_dropped
        # Cleared while nothing may go upstream (``hold``): the writer waits, audio queues.
        self._open = asyncio.Event()
        self._open.set()
        # Set by the session when the upstream is live (see the module's docstring).
        self.write_now: Callable[[str], bool] | None = None

    async def next(self) -> str:
        """The next frame to write upstream (the writer's only source), once not held."""
        frame = await self._queue.get()
        if not self._open.is_set():
            await self._open.wait()
        return frame

    def hold(self) -> None:
        """Send nothing upstream until ``resume``: frames (audio included) queue, in order,
        up to the bound (≈10 s); beyond it audio is dropped and commands refused (``busy``)."""
        self._open.clear()

    def resume(self) -> None:
        self._open.set()

    def audio(self, data: bytes) -> None:
        chunk = self._coalescer.feed(data)
        if chunk:
            self._put_audio(chunk)
        elif len(self._coalescer) and self._flush_handle is None:
            # Never hold the tail of an utterance longer than the coalescing window.
            self._flush_handle = asyncio.get_running_loop().call_later(self._delay, self.flush)

    def flush(self) -> None:
        """Send the audio gathered so far (before any command, so order is kept)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if len(self._coalescer):
            self._put_audio(self._coalescer.drain())

    def frames(self, frames: list[str]) -> bool:
        """All of these upstream frames or none of them; False when there is no room."""
        self.flush()
        if self._queue.maxsize - self._queue.qsize() < len(frames):
            return False
        for frame in frames:
            self._queue.put_nowait(frame)
        return True

    def rebind(self, encode_audio: Callable[[bytes], str]) -> None:
        """Encode the audio from now on for another upstream (a renewal: same API family)."""
        self._encode = encode_audio

    def take_commands(self, is_audio: Callable[[str], bool]) -> list[str]:
        """Take every frame that is not client audio out of the queue (in order); the audio
        stays. A renewal gives the new upstream the conversation instead."""
        self.flush()
        queue = self._queue
        frames = [queue.get_nowait() for _ in range(queue.qsize())]
        commands = [frame for frame in frames if not is_audio(frame)]
        for frame in frames:
            if is_audio(frame):
                queue.put_nowait(frame)
        return commands

    def put_back(self, commands: list[str]) -> None:
        """Commands taken out by ``take_commands`` go back ahead of what is queued (a renewal
        that did not happen); what no longer fits is dropped, the oldest audio first."""
        queue = self._queue
        rest = [queue.get_nowait() for _ in range(queue.qsize())]
        keep = max(0, queue.maxsize - len(commands))
        for frame in commands[: queue.maxsize] + (rest[-keep:] if keep else []):
            queue.put_nowait(frame)

    def close(self) -> None:
        self.write_now = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def _put_audio(self, chunk: bytes) -> None:
        frame = self._encode(chunk)
        write_now = self.write_now if self._open.is_set() else None  # held: it queues
        if write_now is not None and self._queue.empty() and write_now(frame):
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._on_dropped(len(chunk))
