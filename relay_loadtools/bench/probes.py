"""Connect → greeting times and idle-session memory."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from relay_loadtools.bench.measure import Contender, percentile
from relay_loadtools.loadgen import Target
from relay_loadtools.pool import LoadGenPool
from relay_loadtools.procfs import rss_bytes
from relay_loadtools.wsclient import OP_TEXT, open_ws


async def _raw_greeting(target: Target) -> float:
    """TCP connect start → first text message (relay: ``connected``; simulator: created)."""
    got: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_message(opcode: int, payload: bytes) -> None:
        if opcode == OP_TEXT and not got.done():
            got.set_result(time.perf_counter())

    t0 = time.perf_counter()
    ws = await open_ws(target.host, target.port, target.path, on_message, target.origin)
    try:
        async with asyncio.timeout(10):
            t1 = await got
    finally:
        ws.close()
    return (t1 - t0) * 1000


async def _sdk_greeting(sim_base: str) -> float:
    """The official SDK: connect, session.update, until session.updated."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="x", websocket_base_url=f"{sim_base}/v1")
    t0 = time.perf_counter()
    async with asyncio.timeout(10):
        async with client.realtime.connect(model="gpt-realtime") as conn:
            await conn.session.update(session={"type": "realtime"})
            async for event in conn:
                if event.type == "session.updated":
                    break
            t1 = time.perf_counter()
    await client.close()
    return (t1 - t0) * 1000


def _summary(samples: list[float]) -> dict[str, Any]:
    s = sorted(samples)
    return {
        "samples": len(s),
        "p50_ms": round(percentile(s, 0.5), 2),
        "p90_ms": round(percentile(s, 0.9), 2),
        "min_ms": round(s[0], 2) if s else None,
    }


async def _greetings(contenders: list[Contender], sim_base: str, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for _ in range(2):  # warm-up: imports, first-connection costs
        await _sdk_greeting(sim_base)
        for c in contenders:
            await _raw_greeting(c.target(0))
    samples: dict[str, list[float]] = {"direct-sdk": []} | {c.name: [] for c in contenders}
    for _ in range(n):  # interleaved, so drift hits every contender alike
        samples["direct-sdk"].append(await _sdk_greeting(sim_base))
        for c in contenders:
            samples[c.name].append(await _raw_greeting(c.target(0)))
            await asyncio.sleep(0.01)
    for name, values in samples.items():
        out[name] = _summary(values)
    return out


def greetings(contenders: list[Contender], sim_base: str, n: int) -> dict[str, Any]:
    return asyncio.run(_greetings(contenders, sim_base, n))


def idle_memory(pool: LoadGenPool, contender: Contender, sessions: int) -> dict[str, Any]:
    """RSS of the (single) relay process with N idle sessions minus without, per session."""
    pid = contender.pids[0]
    pool.connect([contender.target(0)] * 4)  # warm-up: first-session allocations
    pool.close()
    time.sleep(0.5)
    before = rss_bytes(pid)
    replies = pool.connect([contender.target(0)] * sessions)
    connected = sum(r["connected"] for r in replies)
    time.sleep(1.0)
    after = rss_bytes(pid)
    pool.close()
    per = (after - before) / connected if connected else float("nan")
    return {
        "sessions": connected,
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "per_session_kib": round(per / 1024, 1),
    }


def connect_storm(
    pool: LoadGenPool, contender: Contender, clients: int, rounds: int
) -> dict[str, Any]:
    """``clients`` sessions opened at once (a worker restart, a network blip), ``rounds`` times:
    connect start → greeting for each, and how many failed."""
    greetings: list[float] = []
    failed = 0
    errors: list[str] = []
    for _ in range(rounds):
        targets = [contender.target(i) for i in range(clients)]
        replies = pool.connect(targets, timeout=30.0, concurrency=0)
        for r in replies:
            greetings.extend(r["greeting_ms"])
            failed += r["failed"]
            errors.extend(r["errors"])
        pool.close()
        time.sleep(1.0)  # closes finish before the next storm
    s = sorted(greetings)
    return {
        "clients": clients,
        "rounds": rounds,
        "connected": len(s),
        "failed": failed,
        "errors": errors[:3],
        "p50_ms": round(percentile(s, 0.5), 1),
        "p99_ms": round(percentile(s, 0.99), 1),
        "max_ms": round(s[-1], 1) if s else None,
    }
