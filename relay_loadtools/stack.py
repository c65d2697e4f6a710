"""Command lines and environments of the project's own processes, as load tools start them.

Children run ``python -m django …`` / ``python -m daphne …`` with ``DJANGO_SETTINGS_MODULE``
set, never ``manage.py`` from a checkout, so the tools work from an installed copy too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from relay_loadtools.children import ChildFailed, tail

SETTINGS = "relay_site.settings"


def child_env(extra: Mapping[str, str] | None = None, strip: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment without ``strip``, with the project's settings and ``extra``."""
    dropped = set(strip)
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    return env | dict(extra or {})


def django_argv(*args: str) -> list[str]:
    """A management command in a child (what ``manage.py ARGS`` does from a checkout)."""
    return [sys.executable, "-m", "django", *args]


def daphne_argv(port: int, host: str = "127.0.0.1") -> list[str]:
    # The same flags as ``manage.py serve`` (which also migrates and may start a simulator).
    endpoint = f"tcp:port={port}:interface={host}:backlog=2048"  # as serve listens
    return [
        sys.executable, "-m", "daphne", "-e", endpoint,
        "--ping-interval", "20", "--ping-timeout", "30",
        "--application-close-timeout", "10", "--websocket_timeout", "-1",
        "--websocket_connect_timeout", "10", "--websocket-max-message-size", str(1024 * 1024),
        "-v", "0", "relay_site.asgi:application",
    ]  # fmt: skip


def migrate(env: Mapping[str, str], log: Path, verbosity: int = 0) -> None:
    """Apply migrations to the database ``env`` names (ChildFailed with the log's tail)."""
    with log.open("wb") as out:
        done = subprocess.run(
            django_argv("migrate", "--noinput", "-v", str(verbosity)),
            env=dict(env), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            timeout=120,
        )  # fmt: skip
    if done.returncode:
        raise ChildFailed(f"migrate failed ({done.returncode}):\n{tail(log)}")
