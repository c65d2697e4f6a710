"""Masking keys for the relay's upstream WebSocket frames, drawn from a buffered CSPRNG.

A WebSocket client masks every frame with 4 fresh random bytes (RFC 6455 5.3: from a strong
source of entropy). websockets 15 takes them from ``secrets.token_bytes(4)``: one
``getrandom`` system call per frame, about 6 % of the relay's CPU per audio frame (profiled
with 100 sessions). The same operating-system CSPRNG, read 4 KiB at a time and handed out
4 bytes per frame, gives keys just as strong for one call per thousand frames.

Written against websockets 15 (``websockets.frames`` draws mask keys from
``secrets.token_bytes``). Checked at install: ``websockets.frames.secrets`` is the
``secrets`` module; the probe serialises masked frames and sees each take its key from the
buffer, a fresh one every frame. Off: one system call per frame.
"""

from __future__ import annotations

import os
import secrets
import threading
from types import SimpleNamespace

from realtime.compat.patching import Patch, Replacer, expect

CHUNK = 4096


class BufferedRandom:
    """``token_bytes`` from ``os.urandom`` read in chunks (thread-safe)."""

    def __init__(self, chunk: int = CHUNK) -> None:
        self._chunk = chunk
        self._buffer = b""
        self._offset = 0
        self._lock = threading.Lock()
        self.drawn = 0

    def token_bytes(self, n: int) -> bytes:
        with self._lock:
            if self._offset + n > len(self._buffer):
                self._buffer, self._offset = os.urandom(max(self._chunk, n)), 0
            start = self._offset
            self._offset += n
            self.drawn += n
            return self._buffer[start : self._offset]


_source = BufferedRandom()


def _check() -> None:
    from websockets import frames

    expect(getattr(frames, "secrets", None) is secrets, "websockets draws mask keys otherwise")


def _apply(replace: Replacer) -> None:
    from websockets import frames

    replace(frames, "secrets", SimpleNamespace(token_bytes=_source.token_bytes))


def _probe() -> None:
    from websockets import frames

    frame = frames.Frame(frames.OP_BINARY, b"\x00" * 8)
    before = _source.drawn
    wires = [frame.serialize(mask=True) for _ in range(4)]
    expect(_source.drawn - before == 16, "masked frames did not draw their keys from the buffer")
    keys = {wire[2:6] for wire in wires}
    expect(len(keys) == 4, "masked frames share a key")
    expect(all(wire[6:] == wire[2:6] * 2 for wire in wires), "frames are masked otherwise")


BUFFERED_MASKS = Patch(
    name="websockets_buffered_masks",
    packages=("websockets",),
    targets=("websockets.frames.secrets",),
    check=_check,
    apply=_apply,
    probe=_probe,
)
