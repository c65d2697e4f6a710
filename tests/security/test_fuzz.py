"""Fuzzing the client protocol: ≥ 10 000 generated frames against the in-process relay.

Hypothesis generates batches of client frames (invalid JSON, lone surrogates, unknown and
malformed messages, the allowed types with garbage fields, deep nesting, very long strings,
odd-length and oversized binary). Each batch runs in a fresh session on an event loop of its
own (a background thread), so one bystander session can keep doing text turns on that loop
before, during and after the whole run. What must hold:

* no session ends with 1011 / ``internal_error``; no ERROR record from ``realtime``;
* every error message has ``type``, ``code``, ``message``, ``fatal``; only ``frame_too_large``
  is fatal, always followed by close 1009, and only for a frame over a limit;
* no task owned by a consumer outlives its session (``relay_tasks() == []`` at the end);
* the bystander's turns all complete with the right reply.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime.edge.routing import websocket_urlpatterns
from realtime.kernel.config import RelayConfig, load_config
from realtime.ops.embedded import LoopThread
from realtime_simulator import Simulator
from tests.relay.conftest import relay_tasks, use_config
from tests.security.fuzz_frames import dump, frames

pytestmark = pytest.mark.django_db(transaction=True)


MIN_FRAMES = 10_000
BATCH = 100
EXAMPLES = 105  # 105 batches of 100 frames
ERROR_KEYS = {"type", "code", "message", "fatal"}
FATAL_CODES = {"frame_too_large": 1009}
SESSION_TIMEOUT_S = 20.0

# ---------------------------------------------------------------------------------------------
# A relay on a loop of its own
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    frames: int = 0
    sessions: int = 0
    too_large_closes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class FuzzSession:
    """One client session: a reader task collects every frame the relay sends."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.ws = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/realtime")
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        connected, _ = await self.ws.connect(timeout=SESSION_TIMEOUT_S)
        assert connected, "the relay refused the handshake"
        self._reader = asyncio.create_task(self._read(), name=f"fuzz-reader-{self.number}")
        await self.wait_for(lambda m: m.get("action") == "connected", "greeting")

    async def _read(self) -> None:
        while True:
            frame = await self.ws.receive_output(timeout=3600)
            if frame["type"] == "websocket.close":
                self.close_code = frame.get("code", 1000)
                self.changed.set()
                return
            if frame.get("text") is not None:
                self.messages.append(json.loads(frame["text"]))
                self.changed.set()

    async def wait_for(self, match: Any, what: str) -> bool:
        """True once a message matches; False if the session closed first."""
        async with asyncio.timeout(SESSION_TIMEOUT_S):
            seen = 0
            while True:
                for message in self.messages[seen:]:
                    if match(message):
                        return True
                seen = len(self.messages)
                if self.close_code is not None:
                    return False
                self.changed.clear()
                await self.changed.wait()

    async def send(self, frame: str | bytes) -> None:
        # send_input, not send_to: send_to refuses empty frames, which are part of the fuzz.
        if isinstance(frame, bytes):
            await self.ws.send_input({"type": "websocket.receive", "bytes": frame})
        else:
            await self.ws.send_input({"type": "websocket.receive", "text": frame})

    async def sync(self, tag: str) -> bool:
        """Every frame sent so far was handled: an unknown type's error echoes its name back."""
        await self.ws.send_to(text_data=dump({"type": tag}))
        return await self.wait_for(
            lambda m: m.get("type") == "error" and tag in str(m.get("message")), tag
        )

    async def close(self) -> None:
        # Also after the relay closed: the communicator does not send websocket.disconnect.
        await self.ws.disconnect(timeout=5)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


def check_messages(session: FuzzSession, outcome: Outcome, oversize_sent: bool) -> None:
    for message in session.messages:
        if message.get("type") != "error":
            continue
        code = message.get("code")
        outcome.errors[str(code)] = outcome.errors.get(str(code), 0) + 1
        if set(message) != ERROR_KEYS or not isinstance(message["fatal"], bool):
            outcome.problems.append(f"session {session.number}: malformed error {message}")
        elif not isinstance(code, str) or not isinstance(message["message"], str):
            outcome.problems.append(f"session {session.number}: error fields {message}")
        elif message["fatal"] != (code in FATAL_CODES):
            outcome.problems.append(f"session {session.number}: fatal flag of {message}")
    if session.close_code is not None:
        fatal = [m for m in session.messages if m.get("type") == "error" and m.get("fatal")]
        if not oversize_sent or [m["code"] for m in fatal] != ["frame_too_large"]:
            outcome.problems.append(
                f"session {session.number}: closed {session.close_code}, fatal errors {fatal}"
            )
        elif session.close_code != FATAL_CODES["frame_too_large"]:
            outcome.problems.append(f"session {session.number}: close {session.close_code}")


def over_limit(frame: str | bytes, config: RelayConfig) -> tuple[bool, bool]:
    """(must end the session, may end it): text is judged by its UTF-8 size, as documented."""
    if isinstance(frame, bytes):
        return len(frame) > config.max_binary_bytes, len(frame) > config.max_binary_bytes
    size = len(frame.encode("utf-8", "surrogatepass"))
    return size > config.max_text_bytes, size > config.max_text_bytes


class Fuzzer:
    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.outcome = Outcome()
        self.numbers = 0

    async def run_batch(self, batch: list[str | bytes]) -> None:
        session = await self._open()
        oversize = False
        for frame in batch:
            must_end, may_end = over_limit(frame, self.config)
            await session.send(frame)
            self.outcome.frames += 1
            if not may_end:
                continue
            oversize = True
            # Wait until the relay handled it: either it ended the session or it stayed open.
            still_open = await session.sync(f"zz-sync-{session.number}-{self.outcome.frames}")
            if still_open and must_end:
                self.outcome.problems.append(
                    f"session {session.number}: a {len(frame)}-unit frame over the limit "
                    "did not end the session"
                )
            if not still_open:
                self.outcome.too_large_closes += 1
                await self._finish(session, oversize)
                session, oversize = await self._open(), False
        if not await session.sync(f"zz-end-{session.number}"):
            self.outcome.problems.append(f"session {session.number}: closed mid-batch")
        await self._finish(session, oversize)

    async def _open(self) -> FuzzSession:
        self.numbers += 1
        session = FuzzSession(self.numbers)
        await session.open()
        self.outcome.sessions += 1
        return session

    async def _finish(self, session: FuzzSession, oversize: bool) -> None:
        await session.close()
        check_messages(session, self.outcome, oversize)


@dataclass
class Bystander:
    """A well-behaved session doing text turns the whole time; every reply must be right."""

    ws: WebsocketCommunicator = field(
        default_factory=lambda: WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/realtime")
    )
    interval_s: float = 1.0
    turns: int = 0
    failures: list[str] = field(default_factory=list)

    async def open(self) -> None:
        connected, _ = await self.ws.connect(timeout=SESSION_TIMEOUT_S)
        assert connected
        await self._until(lambda m: m.get("action") == "connected")

    async def _until(self, match: Any) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(SESSION_TIMEOUT_S):
            while True:
                frame = await self.ws.receive_output(timeout=SESSION_TIMEOUT_S)
                if frame["type"] == "websocket.close":
                    raise AssertionError(f"bystander closed with {frame.get('code')}")
                if frame.get("text") is None:
                    continue
                message = json.loads(frame["text"])
                seen.append(message)
                if match(message):
                    return seen

    async def turn(self) -> None:
        word = f"bystander-{self.turns}"
        await self.ws.send_to(text_data=dump({"type": "user_message", "text": word}))
        seen = await self._until(lambda m: m.get("action") == "response_done")
        reply = "".join(m["delta"] for m in seen if m.get("type") == "text_delta")
        errors = [m for m in seen if m.get("type") == "error"]
        done = seen[-1]
        if word not in reply or errors or done.get("status") != "completed":
            self.failures.append(f"turn {self.turns}: reply {reply!r}, errors {errors}, {done}")
        self.turns += 1

    async def keep_talking(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.turn()
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except TimeoutError:
                pass

    async def close(self) -> None:
        await self.ws.disconnect(timeout=5)


class ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# ---------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_fuzzed_client_frames_never_crash_leak_or_disturb_others() -> None:
    runner = LoopThread("fuzz-loop")
    errors = ErrorRecords()
    logging.getLogger("realtime").addHandler(errors)
    simulator = Simulator(pace="fast")
    try:
        runner.run(simulator.start(host="127.0.0.1", port=0))
        config = load_config({"REALTIME_SIMULATOR_URL": simulator.base_url})
        use_config(config)
        fuzzer = Fuzzer(config)
        # Well-behaved: never above the relay's user_message rate (a token bucket per session).
        per_minute = getattr(config, "max_messages_per_minute", 0)
        bystander = Bystander(interval_s=max(1.0, 66 / per_minute) if per_minute else 1.0)
        runner.run(bystander.open())
        runner.run(bystander.turn())  # before
        stop = asyncio.Event()
        talking = asyncio.run_coroutine_threadsafe(bystander.keep_talking(stop), runner.loop)
        turns_before = bystander.turns

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(frames, min_size=BATCH, max_size=BATCH))
        def fuzz(batch: list[str | bytes]) -> None:
            runner.run(fuzzer.run_batch(batch), timeout=120)
            assert not fuzzer.outcome.problems, fuzzer.outcome.problems[:5]

        fuzz()
        turns_during = bystander.turns - turns_before
        runner.loop.call_soon_threadsafe(stop.set)
        talking.result(60)
        runner.run(bystander.turn())  # after
        runner.run(bystander.close())

        async def leftover() -> list[str]:
            for _ in range(200):  # cancelled tasks finish within a few loop turns; ≤ 10 s
                if not relay_tasks():
                    break
                await asyncio.sleep(0.05)
            return [t.get_name() for t in relay_tasks()]

        outcome = fuzzer.outcome
        print(
            f"\nfuzz: {outcome.frames} frames in {outcome.sessions} sessions "
            f"({outcome.too_large_closes} ended by frame_too_large); errors {outcome.errors}; "
            f"bystander turns {bystander.turns} ({turns_during} during)"
        )
        assert outcome.frames >= MIN_FRAMES
        assert not outcome.problems, outcome.problems[:10]
        assert runner.run(leftover()) == []
        assert bystander.failures == [] and turns_during >= 1
        assert [r.getMessage() for r in errors.records] == []
        assert outcome.errors.get("internal_error", 0) == 0
    finally:
        logging.getLogger("realtime").removeHandler(errors)
        try:
            runner.run(simulator.stop(), timeout=10)
        finally:
            runner.stop()


@pytest.mark.usefixtures("relay_config")
async def test_a_text_frame_over_the_limit_in_utf8_bytes_ends_with_1009() -> None:
    from tests.relay.conftest import Client

    client = Client()
    await client.connect()
    text = "😀" * 20_000
    frame = json.dumps({"type": "user_message", "text": text}, ensure_ascii=False)
    assert len(frame) < 64 * 1024 < len(frame.encode())  # 20 k characters, 80 k bytes
    await client.ws.send_to(text_data=frame)
    try:
        error = await client.until(type="error", timeout=5)
        assert error["code"] == "frame_too_large" and error["fatal"] is True
        assert await client.until_closed() == 1009
    finally:
        await client.close()
