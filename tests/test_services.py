"""A service the tests need and do not find is a skip with the reason on a developer's machine,
and a failure under CI=true (CI must never pass by skipping what it was meant to run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_a_missing_redis_postgres_or_program_fails_under_ci_and_skips_otherwise(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(services, "REDIS", ("127.0.0.1", 1))  # nothing listens there
    monkeypatch.setattr(services, "POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:1/x")
    with pytest.raises(outcome, match="Redis is not reachable"):
        services.require_redis()
    with pytest.raises(outcome, match="PostgreSQL is not reachable"):
        services.postgres_admin()
    with pytest.raises(outcome, match="no-such-program is not installed"):
        services.require_program("no-such-program", "apt-get install it")


@pytest.mark.slow  # a pytest of its own
def test_a_missing_chromium_fails_the_browser_tests_under_ci() -> None:
    env = {**os.environ, "CI": "true", "RELAY_TEST_CHROMIUM": "/nonexistent/chromium"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "0", "-p", "no:cacheprovider", "-q",
         "tests/browser/test_login.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-2000:]
    assert "CI=true: /nonexistent/chromium is missing" in done.stdout
    assert " skipped" not in done.stdout.splitlines()[-1]
