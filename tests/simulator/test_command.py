from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

from realtime.management.commands.runsimulator import main
from relay_loadtools.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]


async def test_main_runs_and_stops() -> None:
    stop = asyncio.Event()
    lines: list[str] = []
    ready = asyncio.Event()

    def announce(line: str) -> None:
        lines.append(line)
        ready.set()

    task = asyncio.create_task(main(port=0, pace="fast", stop=stop, announce=announce))
    await asyncio.wait_for(ready.wait(), 5)
    url = lines[0].split()[4]
    assert url.startswith("ws://127.0.0.1:") and "/openai/v1" in lines[0]
    assert f"{url}/v1/live/sessions" in lines[0] and f"{url}/openai/v1/live/sessions" in lines[0]
    async with connect(f"{url}/v1/realtime?model=m") as ws:
        assert '"session.created"' in await ws.recv()
        stop.set()
        await task
    assert ws.close_code == 1001


def test_manage_py_runsimulator_subprocess() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "relay_site.settings"}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runsimulator", "--port", "0", "--pace", "fast"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "Realtime simulator listening on ws://127.0.0.1:" in line, (
            proc.stderr.read() if proc.poll() is not None else line
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_several_processes_share_one_port_and_stop_together() -> None:
    """--processes N: N listeners on the port (SO_REUSEPORT); SIGTERM stops all of them."""
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "relay_site.settings"}
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runsimulator", "--port", str(port), "--processes", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_port(port, proc)

        def listeners() -> set[str]:
            out = subprocess.run(
                ["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True
            ).stdout
            return set(re.findall(r"pid=(\d+)", out))

        deadline = time.monotonic() + 20
        while len(listeners()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = listeners()
        assert len(pids) == 2 and str(proc.pid) in pids

        async def greet() -> str:
            async with connect(f"ws://127.0.0.1:{port}/v1/realtime?model=m") as ws:
                return json.loads(await ws.recv())["type"]

        assert [asyncio.run(greet()) for _ in range(4)] == ["session.created"] * 4
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert listeners() == set()
    finally:
        if proc.poll() is None:
            proc.kill()
