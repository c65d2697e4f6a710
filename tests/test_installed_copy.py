"""The load tools from an installed, non-editable copy, run outside the checkout.

A wheel is built from a copy of the checkout (``pip wheel --no-deps``) and installed into a
fresh venv. The venv gets its dependencies from this environment's site-packages as a plain
path entry: the .pth files there (the editable install's finder among them) are not processed,
so the only copy of the project the venv can import is the wheel's. Commands run from an empty
directory, without PYTHONPATH, as ``python -m django …``: what ``manage.py …`` is without a
checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from realtime.kernel.providers import PROVIDER_VARIABLES

pytestmark = pytest.mark.slow  # a wheel built and installed, then bench and soak from it

ROOT = Path(__file__).resolve().parent.parent
CONTENDERS = {"direct", "bare", "daphne-1", "daphne-2", "tools-1", "live-1"}
NOT_SHIPPED = (".git", ".venv", "build", "*.egg-info", "__pycache__", "tests", "docs",
               "bench-out", "soak-out", "*.sqlite3")  # fmt: skip


@dataclass
class Installed:
    python: Path
    site: Path
    cwd: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args], cwd=self.cwd, env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


def _check(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _run(*argv: str | Path, timeout: float = 300) -> str:
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    return _check(done)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("installed")
    src, dist, venv, cwd = tmp / "src", tmp / "dist", tmp / "venv", tmp / "elsewhere"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_SHIPPED))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run(*pip, "wheel", src, "--no-deps", "-w", dist)
    (wheel,) = dist.glob("realtime_relay-*.whl")
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run(python, "-c", purelib).strip())
    (site / "_relay_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(*pip, "install", "--no-deps", "--no-index", "--target", site, wheel)
    cwd.mkdir()
    stripped = {*PROVIDER_VARIABLES, "PYTHONPATH", "VIRTUAL_ENV", "DATABASE_URL", "REDIS_URL"}
    env = {k: v for k, v in os.environ.items() if k not in stripped}
    env["DJANGO_SETTINGS_MODULE"] = "relay_site.settings"
    return Installed(python, site, cwd, env)


def test_the_project_and_its_load_tools_import_from_the_wheel(installed: Installed) -> None:
    script = """
import json, os, sys
import realtime, relay_site.settings
import relay_loadtools.bench.runner, relay_loadtools.soak, relay_loadtools.loadcheck
from relay_loadtools import audio
print(json.dumps({
    "realtime": realtime.__file__, "relay_site": relay_site.settings.__file__,
    "loadtools": relay_loadtools.__file__,
    "copies": [p for p in sys.path if os.path.isfile(os.path.join(p or ".", "realtime/apps.py"))],
    "editable": [m for m in sys.modules if "editable" in m],
    "cycle": [len(f) for f in audio.speech_cycle()],
}))
"""
    found = json.loads(_check(installed.run("-c", script, timeout=60)))
    for name in ("realtime", "relay_site", "loadtools"):
        assert Path(found[name]).is_relative_to(installed.site), found
    assert found["copies"] == [str(installed.site)], found  # the checkout is not reachable
    assert found["editable"] == [], found
    assert found["cycle"] == [960] * 175
    assert not (installed.site / "bench").exists()  # no stray top-level package
    assert (installed.site / "realtime" / "static" / "realtime" / "client.js").is_file()


@pytest.mark.timeout(200)
def test_bench_smoke_from_the_installed_copy(installed: Installed) -> None:
    pytest.importorskip("matplotlib")
    out = installed.cwd / "bench"
    _check(installed.run("-m", "django", "bench", "--smoke", "--out", str(out), timeout=180))
    # Its three outputs, each contender in them (serve --workers 2 ran from the wheel too).
    # No timing is asserted: the figures are for humans (docs/benchmark.md).
    results = json.loads((out / "results.json").read_text())
    assert set(results["contenders"]) == CONTENDERS
    sweeps = results["sweeps"]
    assert set(sweeps["960"]) == CONTENDERS  # tools-on and GPT-Live: 20 ms frames only
    assert set(sweeps["256"]) == {"direct", "bare", "daphne-1", "daphne-2"}
    for sweep in sweeps.values():
        for points in sweep.values():
            assert points and points[0]["frames_sent"] > 0
            assert points[0]["connected"] == points[0]["sessions"] > 0
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


# Margins for a 12-second run of 2 sessions: sampling happens at steady state (sessions
# connected) both times, so only real leaks (a socket or a task per turn) exceed them.
FD_MARGIN = 4
TASK_MARGIN = 6


@pytest.mark.timeout(200)
def test_soak_from_the_installed_copy_samples_and_nothing_leaks(installed: Installed) -> None:
    out = installed.cwd / "soak.json"
    args = ["-m", "django", "soak", "--sessions", "2", "--minutes", "0.2", "--out", str(out)]
    _check(installed.run(*args, timeout=180))
    report = json.loads(out.read_text())
    start, end = report["start"], report["end"]
    for sample in (start, end):
        assert {"fds", "rss_kb", "threads", "asyncio_tasks", "active_sessions"} <= set(sample)
        assert sample["fds"] > 0 and sample["rss_kb"] > 0 and sample["asyncio_tasks"] > 0
        assert sample["active_sessions"] == 2
    assert end["fds"] - start["fds"] <= FD_MARGIN, report
    assert end["asyncio_tasks"] - start["asyncio_tasks"] <= TASK_MARGIN, report
    assert report["sessions_connected"] == 2
    assert report["turns"] >= 2, report  # each client got at least one reply
    # A text message may land while a spoken turn is being answered: the upstream's non-fatal
    # refusal is passed on. Anything else (or a close other than the clients' own) is a fault.
    assert set(report["errors"]) <= {"conversation_already_has_active_response"}, report
    assert report["close_codes"] == {"1000": 2}, report


def test_loadcheck_from_the_installed_copy(installed: Installed) -> None:
    args = ["-m", "relay_loadtools.loadcheck", "--sessions", "2", "--seconds", "1"]
    result = json.loads(_check(installed.run(*args, timeout=120)))
    assert result["sessions"] == 2 and result["frames_sent"] > 0
    assert result["echo_lag_ms"]["received"] > 0
