"""The machine's services some tests need: Redis, PostgreSQL, Chromium, haproxy, redis-server.

Without one, those tests are skipped with the reason — except under ``CI=true``, where a
missing service is a failure (CI must never pass by skipping what it was meant to run).
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any, NoReturn

import pytest

REDIS = ("127.0.0.1", 6379)
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def missing(reason: str) -> NoReturn:
    """Skip the test (fail it under CI=true): ``reason`` says what is missing and how to get it."""
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis() -> str:
    """The machine's Redis URL (skip, or fail under CI=true, when it does not answer)."""
    if not redis_reachable():
        missing("Redis is not reachable at 127.0.0.1:6379 (multi-worker tests need it)")
    return REDIS_URL


def postgres_admin() -> Any:
    """An autocommit connection to the machine's PostgreSQL as ``postgres`` (skip, or fail
    under CI=true, when it is not reachable)."""
    try:
        import psycopg

        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except Exception as exc:
        missing(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc}")


def require_program(name: str, install: str) -> str:
    """The path of program ``name`` (also looked up in /usr/sbin); ``install`` says how."""
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if not found:
        missing(f"{name} is not installed ({install})")
    return found
