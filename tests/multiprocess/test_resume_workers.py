"""Resume across real workers (two daphne processes, Redis, one database): a client whose
socket dropped resumes on the other worker; the session is handed over while its first
worker still holds it; it is rebuilt from Redis after its worker was SIGKILLed; a SIGTERM
loses no conversation. The model's recall tells whether the conversation came along."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
from websockets.asyncio.client import connect

from tests.multiprocess.test_two_workers import rows, wait_rows

pytestmark = pytest.mark.multiprocess

RECALL = 'Earlier you said: "my name is Ada"'


class Session:
    """A websockets client of the relay that keeps what it was told."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.info: dict = {}
        self.errors: list[dict] = []

    @classmethod
    async def open(cls, port: int, token: str | None = None) -> Session:
        query = f"?resume={token}" if token else ""
        ws = await connect(
            f"ws://127.0.0.1:{port}/realtime{query}", origin=f"http://127.0.0.1:{port}"
        )
        session = cls(ws)
        async with asyncio.timeout(20):
            while not session.info:
                await session._next()
            if not session.info["resumed"] and token:
                while not session.errors:  # resume_unavailable follows session_info
                    await session._next()
        return session

    async def _next(self) -> dict | None:
        frame = await self.ws.recv()
        if not isinstance(frame, str):
            return None
        message = json.loads(frame)
        if message.get("action") == "session_info":
            self.info = message
        if message.get("type") == "error":
            self.errors.append(message)
        return message

    async def ask(self, text: str) -> str:
        await self.ws.send(json.dumps({"type": "user_message", "text": text}))
        said = []
        async with asyncio.timeout(20):
            while True:
                message = await self._next()
                if message is None:
                    continue
                if message.get("type") == "text_delta":
                    said.append(message["delta"])
                if message.get("action") == "response_done":
                    return "".join(said)

    def drop(self) -> None:
        """The network goes away: no close frame, the TCP connection just ends."""
        self.ws.transport.abort()

    async def close(self) -> None:
        await self.ws.close()


def row_of(db_path, session_id: str) -> dict:
    hexid = session_id.replace("-", "")
    [row] = [r for r in rows(db_path) if str(r["id"]).replace("-", "") == hexid]
    return row


def until_row(db_path, session_id: str, predicate, timeout: float = 15) -> dict:
    hexid = session_id.replace("-", "")

    def match(found: list[dict]) -> bool:
        mine = [r for r in found if str(r["id"]).replace("-", "") == hexid]
        return bool(mine) and predicate(mine[0])

    wait_rows(db_path, match, timeout)
    return row_of(db_path, session_id)


def until_saved(deployment, session_id: str, words: str, timeout: float = 15) -> None:
    """Wait until the session's resume state in Redis holds ``words``."""
    import time

    import redis

    key = f"{deployment.env['REDIS_CHANNEL_PREFIX']}-resume:state:{session_id}"
    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(deployment.env["REDIS_URL"]) as r:
        while words.encode() not in (r.get(key) or b""):
            assert time.monotonic() < deadline, f"no saved state with {words!r} at {key}"
            time.sleep(0.05)


async def a_conversation(port: int) -> Session:
    session = await Session.open(port)
    assert session.info["resumed"] is False and session.info["resume_token"]
    assert "my name is Ada" in await session.ask("my name is Ada")
    return session


async def resumed_on(port: int, first: Session, pid: int, db_path) -> Session:
    """Resume ``first``'s session on ``port``: the same session, the conversation recalled,
    its row served by worker ``pid``."""
    second = await Session.open(port, first.info["resume_token"])
    assert second.errors == [], second.errors
    assert second.info["session_id"] == first.info["session_id"]
    assert second.info["resumed"] is True
    assert (await second.ask("what did I say")).startswith(RECALL)
    # the row is written by the session's presence task: wait for it, do not race it
    row = until_row(db_path, first.info["session_id"], lambda r: r["status"] == "live")
    assert row["worker_id"].endswith(f":{pid}")
    assert row["resumes"] == 1
    return second


@pytest.mark.both_apis
async def test_a_dropped_socket_resumes_on_the_other_worker(deployment):
    _worker_a, port_a = deployment.start_worker()
    worker_b, port_b = deployment.start_worker()
    first = await a_conversation(port_a)
    first.drop()
    session_id = first.info["session_id"]
    # In a thread: the event loop must run for the aborted socket to close.
    await asyncio.to_thread(
        until_row, deployment.db_path, session_id, lambda r: r["status"] == "detached"
    )
    second = await resumed_on(port_b, first, worker_b.pid, deployment.db_path)
    await second.close()
    row = until_row(deployment.db_path, session_id, lambda r: r["status"] == "closed")
    assert (row["close_reason"], row["responses"], row["text_messages"]) == (
        "client_closed",
        2,
        2,
    )
    assert len(rows(deployment.db_path)) == 1


async def test_a_session_still_held_by_its_worker_is_handed_over(deployment):
    """The old socket has not noticed it is dead (a phone that changed network): the resume
    on the other worker takes the session, and the old connection is told 4015."""
    _worker_a, port_a = deployment.start_worker()
    worker_b, port_b = deployment.start_worker()
    first = await a_conversation(port_a)
    second = await resumed_on(port_b, first, worker_b.pid, deployment.db_path)
    async with asyncio.timeout(10):
        while not first.errors:
            await first._next()
    assert first.errors[-1]["code"] == "session_resumed_elsewhere"
    await first.ws.wait_closed()
    assert first.ws.close_code == 4015
    await second.close()
    row = until_row(deployment.db_path, first.info["session_id"], lambda r: r["status"] == "closed")
    assert row["close_reason"] == "client_closed"  # B closed it; A never wrote over it


async def test_a_session_is_rebuilt_from_redis_after_its_worker_was_killed(deployment):
    worker_a, port_a = deployment.start_worker()
    worker_b, port_b = deployment.start_worker()
    first = await a_conversation(port_a)
    # the state is written in the background at each answer's end: a SIGKILL before that
    # write lands loses the answer (documented); the test kills once it has landed
    await asyncio.to_thread(until_saved, deployment, first.info["session_id"], "my name is Ada")
    worker_a.send_signal(signal.SIGKILL)
    await asyncio.to_thread(worker_a.wait, 10)
    second = await resumed_on(port_b, first, worker_b.pid, deployment.db_path)
    assert "did not hand it over" in deployment.output(port_b)
    await second.close()


@pytest.mark.both_apis
async def test_a_sigterm_loses_no_conversation(deployment):
    worker_a, port_a = deployment.start_worker()
    worker_b, port_b = deployment.start_worker()
    first = await a_conversation(port_a)
    worker_a.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        while not first.errors:
            await first._next()
    assert first.errors[-1]["code"] == "server_restarting"
    await first.ws.wait_closed()
    assert first.ws.close_code == 1012
    # the session was kept (state, row) before its client heard 1012
    row = row_of(deployment.db_path, first.info["session_id"])
    assert row["status"] == "detached", deployment.output(port_a)[-4000:]
    assert await asyncio.to_thread(worker_a.wait, 15) == 0
    second = await resumed_on(port_b, first, worker_b.pid, deployment.db_path)
    await second.close()
