"""Simulator load check: N websocket sessions streaming 20 ms PCM16 frames in real time.

    python -m relay_loadtools.loadcheck --sessions 500 --seconds 10 [--mode echo|vad]

The simulator runs in a child process so its CPU (from /proc/PID/stat) is measured apart
from the clients'. ``echo`` mode stamps a sequence number and send time into each frame and
measures the round-trip lag of the echoed delta; ``vad`` mode streams speech-like audio into
a normal server-VAD session (turn detection on, responses off) and measures CPU only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import statistics
import struct
import time
from typing import Any

from websockets.asyncio.client import connect

from realtime_simulator.synth import speech_pcm
from relay_loadtools.audio import FRAME_MS, frames
from relay_loadtools.procfs import cpu_seconds

FRAME_S = FRAME_MS / 1000


def _serve(port_queue: Any, echo: bool) -> None:
    from realtime_simulator.server import Simulator

    async def run() -> None:
        sim = Simulator(pace="fast", echo=echo)
        await sim.start("127.0.0.1", 0)
        port_queue.put((os.getpid(), sim.port))
        await asyncio.Event().wait()

    asyncio.run(run())


async def _session(
    url: str, seconds: float, mode: str, lags: list[float], counts: list[int], start_at: float
) -> None:
    speech = frames(speech_pcm(1000))  # 50 whole frames, sent in a loop
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.recv()  # session.created
        if mode == "vad":
            vad = {"type": "server_vad", "create_response": False}
            audio = {"input": {"turn_detection": vad}}
            update = {"type": "session.update", "session": {"type": "realtime", "audio": audio}}
            await ws.send(json.dumps(update))
            await ws.recv()

        async def reader() -> None:
            async for message in ws:
                if mode == "echo":
                    event = json.loads(message)
                    raw = base64.b64decode(event["delta"])
                    (sent_at,) = struct.unpack_from("<d", raw, 8)
                    lags.append(time.perf_counter() - sent_at)

        read_task = asyncio.create_task(reader())
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        begin = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - begin < seconds:
            frame = bytearray(speech[n % len(speech)])
            struct.pack_into("<qd", frame, 0, n, time.perf_counter())
            audio = base64.b64encode(frame).decode()
            await ws.send('{"type":"input_audio_buffer.append","audio":"' + audio + '"}')
            n += 1
            await asyncio.sleep(max(0.0, begin + n * FRAME_S - now - 0.0005))
        counts.append(n)
        await asyncio.sleep(0.5)
        read_task.cancel()


async def run(sessions: int, seconds: float, mode: str) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_serve, args=(queue, mode == "echo"), daemon=True)
    proc.start()
    pid, port = queue.get(timeout=30)
    url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
    lags: list[float] = []
    counts: list[int] = []
    try:
        start_at = time.perf_counter() + 2.0 + sessions * 0.004
        marks: list[float] = []

        async def mark_start() -> None:
            # CPU is measured from when streaming starts, leaving out the handshakes.
            await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
            marks.extend([cpu_seconds(pid), time.perf_counter()])

        await asyncio.gather(
            mark_start(),
            *(_session(url, seconds, mode, lags, counts, start_at) for _ in range(sessions)),
        )
        cpu = cpu_seconds(pid) - marks[0]
        wall = time.perf_counter() - marks[1]
    finally:
        proc.terminate()
    frames = sum(counts)
    expected = sessions * seconds / FRAME_S
    result: dict[str, Any] = {
        "mode": mode,
        "sessions": sessions,
        "seconds": seconds,
        "frames_sent": frames,
        "frames_expected_at_real_time": int(expected),
        "send_pace_ratio": round(frames / expected, 3),
        "simulator_cpu_s": round(cpu, 2),
        "simulator_cpu_us_per_frame": round(cpu / frames * 1e6, 1) if frames else None,
        "simulator_cpu_share_of_one_core": round(cpu / wall, 3),
    }
    if lags:
        lags.sort()
        result["echo_lag_ms"] = {
            "p50": round(statistics.median(lags) * 1000, 2),
            "p99": round(lags[int(len(lags) * 0.99) - 1] * 1000, 2),
            "max": round(lags[-1] * 1000, 2),
            "received": len(lags),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mode", choices=["echo", "vad"], default="echo")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.sessions, args.seconds, args.mode)), indent=2))


if __name__ == "__main__":
    main()
