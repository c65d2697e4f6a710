"""What the client heard, and barge-in truncation (pure parts of the session core)."""

from __future__ import annotations

import asyncio

from realtime.session.outbox import AudioCoalescer
from realtime.session.playback import AudioTracker, BargeIn, Interruption


def test_a_new_item_is_announced_once():
    tracker = AudioTracker()
    assert tracker.sent("a", 0, 960, now=1.0) is True
    assert tracker.sent("a", 0, 960, now=1.02) is False
    assert tracker.sent("b", 0, 960, now=1.04) is True


def test_barge_in_estimates_what_was_played():
    """1 s sent, 0.4 s elapsed since the first frame → heard 400 ms."""
    tracker = AudioTracker()
    tracker.sent("a", 0, 48000, now=10.0)
    cut = tracker.interruption(10.4)
    assert cut == Interruption("a", 0, 1000, 400)
    assert cut.heard_ms(None) == 400
    # The client's exact figure wins, but never beyond what was sent.
    assert cut.heard_ms(250) == 250 and cut.heard_ms(5000) == 1000
    assert tracker.is_cut("a") and not tracker.is_cut("b")


def test_no_interruption_when_everything_sent_was_played():
    tracker = AudioTracker()
    tracker.sent("a", 0, 4800, now=0.0)  # 100 ms
    assert tracker.interruption(5.0) is None
    assert not tracker.is_cut("a")


async def test_barge_in_waits_for_the_playback_report_then_falls_back_to_the_estimate():
    truncated: list[tuple[str, int | None]] = []
    barge_in = BargeIn(wait_ms=50, truncate=lambda cut, ms: truncated.append((cut.item_id, ms)))
    barge_in.cut(Interruption("a", 0, 1000, 400))
    barge_in.playback("other", 10)  # not the cut item: ignored
    barge_in.playback("a", 321)
    assert truncated == [("a", 321)]
    barge_in.cut(Interruption("b", 0, 1000, 400))
    await asyncio.sleep(0.1)
    assert truncated == [("a", 321), ("b", None)]  # no report: the estimate
    barge_in.close()


def test_coalescer_joins_small_frames_and_never_splits_a_sample():
    co = AudioCoalescer(flush_bytes=960, max_bytes=10_000)
    out = [co.feed(b"\x01" * 255) for _ in range(4)]
    assert out[:3] == [None, None, None]
    assert out[3] is not None and len(out[3]) == 1020 and len(out[3]) % 2 == 0
    assert co.feed(b"\x01\x02\x03") is None
    assert co.drain() == b"\x01\x02"  # the odd third byte waits for its partner
    assert co.feed(b"\x04") is None
    assert co.drain() == b"\x03\x04"


def test_coalescer_is_bounded():
    co = AudioCoalescer(flush_bytes=100_000, max_bytes=1000)
    co.feed(bytes(800))
    co.feed(bytes(800))
    assert len(co) == 1000
    assert co.dropped_bytes == 600


async def test_audio_is_written_at_once_only_when_nothing_is_queued_ahead_of_it():
    """Upstream order is kept: a command waiting for the writer holds later audio behind it;
    a refused immediate write (the socket is busy) queues the frame."""
    from realtime.session.outbox import UpstreamOutbox

    written: list[str] = []
    socket_free = True

    def write_now(frame: str) -> bool:
        if socket_free:
            written.append(frame)
        return socket_free

    outbox = UpstreamOutbox(coalesce_ms=20, encode_audio=lambda pcm: f"a{len(pcm)}",
                            on_dropped=lambda n: None)  # fmt: skip
    outbox.audio(b"\0" * 960)  # not live yet: queued
    outbox.write_now = write_now
    outbox.audio(b"\0" * 960)  # behind the queued one: queued too
    assert written == [] and [await outbox.next(), await outbox.next()] == ["a960", "a960"]

    outbox.audio(b"\0" * 962)  # queue empty: written at once
    assert written == ["a962"]
    assert outbox.frames(["cmd"])  # a command goes through the queue
    outbox.audio(b"\0" * 960)
    assert written == ["a962"] and [await outbox.next(), await outbox.next()] == ["cmd", "a960"]

    socket_free = False
    outbox.audio(b"\0" * 960)
    assert await outbox.next() == "a960" and written == ["a962"]
    outbox.close()
    socket_free = True
    outbox.audio(b"\0" * 960)  # a closed outbox writes nothing directly
    assert written == ["a962"]


async def test_a_held_outbox_writes_nothing_until_resumed_and_keeps_the_order():
    """While the session checks the daily budget after an answer, nothing goes upstream:
    audio is not written at once, and the writer waits with what it took."""
    from realtime.session.outbox import UpstreamOutbox

    written: list[str] = []
    outbox = UpstreamOutbox(coalesce_ms=20, encode_audio=lambda pcm: f"a{len(pcm)}",
                            on_dropped=lambda n: None)  # fmt: skip
    outbox.write_now = lambda frame: written.append(frame) is None
    outbox.hold()
    outbox.audio(b"\0" * 960)
    assert outbox.frames(["response.create"])
    assert written == []
    writer = asyncio.ensure_future(outbox.next())
    await asyncio.sleep(0.05)
    assert not writer.done()  # held
    outbox.resume()
    assert await writer == "a960" and await outbox.next() == "response.create"
    outbox.audio(b"\0" * 962)  # resumed, nothing queued: written at once again
    assert written == ["a962"]
    outbox.close()
