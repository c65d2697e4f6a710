"""Sequence stamps inside PCM frames, recoverable after the relay coalesces frames.

Each client frame starts with a 16-byte stamp: a 4-byte magic marker, the frame's sequence
number (u32) and its send time (``time.perf_counter_ns()``, u64; CLOCK_MONOTONIC, so it is
comparable across processes on Linux). The rest of the frame is silence (zeros), so the marker
cannot occur by chance. The relay joins frames without reordering or altering bytes (PCM16 is
passed through base64 both ways), so every stamp survives coalescing intact: a receiver finds
them by scanning for the marker, wherever the chunk boundaries fall.
"""

from __future__ import annotations

import struct

MAGIC = b"\xa5BN\xc7"
STAMP = struct.Struct("<4sIQ")
STAMP_BYTES = STAMP.size  # 16
_TAIL = struct.Struct("<IQ")


def make_frame_template(frame_bytes: int) -> bytearray:
    if frame_bytes < STAMP_BYTES or frame_bytes % 2:
        raise ValueError("a frame must be even-sized and hold a 16-byte stamp")
    return bytearray(frame_bytes)


def stamp_into(frame: bytearray, seq: int, sent_ns: int) -> bytes:
    STAMP.pack_into(frame, 0, MAGIC, seq & 0xFFFFFFFF, sent_ns)
    return bytes(frame)


def scan(data: bytes) -> tuple[int, int]:
    """(number of stamps, newest send time in ns) found in ``data``; (0, 0) when none."""
    count = 0
    newest = 0
    find = data.find
    unpack = _TAIL.unpack_from
    i = find(MAGIC)
    while i >= 0:
        _seq, sent = unpack(data, i + 4)
        count += 1
        if sent > newest:
            newest = sent
        i = find(MAGIC, i + STAMP_BYTES)
    return count, newest


def scan_all(data: bytes) -> list[int]:
    """Send times (ns) of every stamp in ``data``, in order."""
    out: list[int] = []
    i = data.find(MAGIC)
    while i >= 0:
        out.append(_TAIL.unpack_from(data, i + 4)[1])
        i = data.find(MAGIC, i + STAMP_BYTES)
    return out
