"""Smoke of ``manage.py bench --smoke``: it runs end to end and writes its three outputs.

No timing is asserted: CI machines are noisy; the figures are for humans (docs/benchmark.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS = {"direct", "bare", "daphne-1", "daphne-2", "tools-1", "live-1"}


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_bench_smoke_writes_json_markdown_and_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "bench"
    proc = subprocess.run(
        [sys.executable, "manage.py", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=140,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    assert set(results["contenders"]) == CONTENDERS
    sweeps = results["sweeps"]
    assert set(sweeps["960"]) == CONTENDERS  # tools-on and GPT-Live: 20 ms frames only
    assert set(sweeps["256"]) == {"direct", "bare", "daphne-1", "daphne-2"}
    for sweep in sweeps.values():
        for points in sweep.values():
            assert points and points[0]["frames_sent"] > 0
            assert points[0]["connected"] == points[0]["sessions"]
    assert {"direct-sdk", "daphne-1", "bare"} <= set(results["greeting"])
    assert results["targets"]
    storm = results["connect_storm"]
    assert set(storm) == {"bare", "daphne-1", "daphne-2", "live-1"}
    for row in storm.values():  # every client of the storm got its greeting
        assert row["failed"] == 0 and row["connected"] == row["clients"] * row["rounds"]

    table = (out / "results.md").read_text()
    for name in CONTENDERS:
        assert f"| {name} |" in table
    assert (out / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
