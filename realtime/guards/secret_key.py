"""Django's SECRET_KEY: required where it protects something, generated where nothing is at stake.

Connect tickets and session cookies are signed with it, so a key known to anyone (a default
in the source) lets anyone forge them. ``DJANGO_SECRET_KEY`` (or ``DJANGO_SECRET_KEY_FILE``)
is therefore required with a paid upstream, and wherever ``DJANGO_DEBUG=false`` is set
explicitly (a production deployment says so). The zero-configuration simulator mode keeps
working without it: a random key is made once and kept in the git-ignored file
``.dev-secret-key`` beside ``manage.py`` (shared by the workers of one checkout), or kept in
memory for this process when that directory is read-only.

Settings only record the problem; ``manage.py`` commands refuse to start through a system
check (``realtime.E010``), and an application built from the environment for another ASGI
server exits (``relay_site/application.py``), each with a message naming the variable.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("realtime.guards.secret_key")

DEV_KEY_FILE = ".dev-secret-key"
VARIABLE = "DJANGO_SECRET_KEY"
# Values published in this repository's history or examples: as good as no key.
KNOWN_KEYS = frozenset(
    {"change-me-to-a-long-random-string", "insecure-dev-key-change-me-" + "x" * 20}
)
FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class SecretKey:
    value: str
    source: str  # "environment", "file" (the dev key file), "memory"
    problem: str | None = None  # why start-up must refuse, naming the variable


def resolve(env: Mapping[str, str], base_dir: Path, *, paid: bool) -> SecretKey:
    """The key to use, where it came from, and whether start-up must refuse."""
    try:
        given = _given(env)
    except OSError as exc:
        problem = f"{VARIABLE}_FILE names a file that cannot be read ({type(exc).__name__})"
        return SecretKey(secrets.token_urlsafe(50), "memory", problem)
    if given and given not in KNOWN_KEYS:
        return SecretKey(given, "environment")
    debug_off = env.get("DJANGO_DEBUG", "").strip().lower() in FALSE
    if given or paid or debug_off:
        why = (
            f"{VARIABLE} is a published example value"
            if given
            else f"{VARIABLE} is not set"
            + (" and a paid upstream is configured" if paid else " and DJANGO_DEBUG=false")
        )
        problem = (
            f"{why}: connect tickets and login cookies are signed with it. Set {VARIABLE} "
            f"(or {VARIABLE}_FILE) to a long random value, e.g. "
            '`python3 -c "import secrets; print(secrets.token_urlsafe(50))"`'
        )
        return SecretKey(secrets.token_urlsafe(50), "memory", problem)
    return _dev_key(base_dir / DEV_KEY_FILE)


def _given(env: Mapping[str, str]) -> str:
    path = env.get(f"{VARIABLE}_FILE", "").strip()
    if path:
        return Path(path).read_text().strip()
    return env.get(VARIABLE, "").strip()


def _dev_key(path: Path) -> SecretKey:
    """The checkout's own random key: made once, atomically (workers may start together)."""
    try:
        existing = path.read_text().strip()
        if existing:
            return SecretKey(existing, "file")
    except FileNotFoundError:
        pass
    except OSError:
        return SecretKey(secrets.token_urlsafe(50), "memory")
    key = secrets.token_urlsafe(50)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
        try:
            os.link(temporary, path)  # fails if another process won the race: use theirs
        except FileExistsError:
            key = path.read_text().strip() or key
        finally:
            temporary.unlink(missing_ok=True)
    except OSError:  # a read-only install (a container image): this process only
        return SecretKey(key, "memory")
    return SecretKey(key, "file")
