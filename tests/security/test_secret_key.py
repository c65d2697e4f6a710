"""DJANGO_SECRET_KEY: required where tickets and cookies protect a paid key; generated (and
git-ignored) for the zero-configuration simulator mode."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from realtime.guards.secret_key import DEV_KEY_FILE, resolve

ROOT = Path(__file__).resolve().parents[2]
PAID = {"OPENAI_API_KEY": "sk-test-paid-123"}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DATABASE_URL": "sqlite://:memory:"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base | env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "env",
    [
        PAID,
        {"DJANGO_DEBUG": "false"},
        PAID | {"DJANGO_SECRET_KEY": "change-me-to-a-long-random-string"},
    ],
    ids=["paid upstream", "DJANGO_DEBUG=false", "the published example key"],
)
def test_start_up_refuses_without_a_real_secret_key(env):
    result = manage("check", **env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "realtime.E010" in result.stderr
    assert "sk-test-paid-123" not in result.stdout + result.stderr


def test_serve_with_a_paid_upstream_and_no_key_does_not_start():
    result = manage("serve", "--port", "0", "--no-migrate", **PAID)
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


def test_another_asgi_server_gets_the_same_refusal():
    code = "import relay_site.asgi"
    env = {"PATH": os.environ.get("PATH", ""), "DJANGO_SETTINGS_MODULE": "relay_site.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env | PAID,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Configuration error: DJANGO_SECRET_KEY is not set" in result.stderr


def test_a_paid_upstream_starts_with_a_key():
    assert manage("check", DJANGO_SECRET_KEY="a-real-key-" + "k" * 40, **PAID).returncode == 0


def test_the_simulator_mode_needs_no_configuration():
    assert manage("check").returncode == 0


def test_the_generated_key_is_random_private_kept_and_shared_by_workers(tmp_path):
    keys = list(ThreadPoolExecutor(8).map(lambda _: resolve({}, tmp_path, paid=False), range(8)))
    assert len({k.value for k in keys}) == 1 and keys[0].source == "file"
    assert len(keys[0].value) >= 50 and keys[0].problem is None
    path = tmp_path / DEV_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve({}, tmp_path, paid=False).value == keys[0].value  # kept across restarts
    assert resolve({}, tmp_path / "other", paid=False).value != keys[0].value
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


def test_the_generated_key_file_is_git_ignored_and_not_shipped():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", DEV_KEY_FILE], cwd=ROOT, capture_output=True
    )
    assert ignored.returncode == 0
    assert DEV_KEY_FILE in (ROOT / ".dockerignore").read_text().split()


def test_a_read_only_install_gets_a_key_for_this_process(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr("realtime.guards.secret_key.os.open", read_only)
    key = resolve({}, tmp_path, paid=False)
    assert key.source == "memory" and key.problem is None and len(key.value) >= 50


def test_the_key_is_taken_from_the_environment_or_its_file(tmp_path):
    assert resolve({"DJANGO_SECRET_KEY": "k" * 60}, tmp_path, paid=True).value == "k" * 60
    secret = tmp_path / "secret"
    secret.write_text("f" * 60 + "\n")
    from_file = resolve({"DJANGO_SECRET_KEY_FILE": str(secret)}, tmp_path, paid=True)
    assert from_file.value == "f" * 60 and from_file.problem is None
    missing = resolve({"DJANGO_SECRET_KEY_FILE": str(tmp_path / "nope")}, tmp_path, paid=True)
    assert "DJANGO_SECRET_KEY_FILE" in missing.problem
