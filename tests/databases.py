"""Migrated databases for tests that run the relay in processes of its own.

``migrate`` (and ``createsuperuser``) run once per test run, into a template: a SQLite file
that each test copies, or a PostgreSQL database that each test clones with
``CREATE DATABASE … TEMPLATE``. The test's database is the same as one migrated for it alone;
only the repeated start-up of Django and the migrations are saved.

With pytest-xdist the workers share the templates of their run (built by the first worker
that needs one, under a file lock); the controller drops the PostgreSQL templates when the
run ends (``tests/conftest.py``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ADMIN = ("admin", "admin-pw", "a@x.io")  # the superuser of the "admin" templates
POSTGRES = "postgres://postgres@127.0.0.1:5432"
PG_TEMPLATES_FILE = "postgres-templates.txt"  # in the run's directory: what to drop at the end


def run_directory(basetemp: Path) -> Path:
    """The directory of this test run, shared by its xdist workers (each has a basetemp of
    its own below it)."""
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp


def manage(database_url: str, *args: str, **env: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY": "template-builder",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)}: {done.stderr[-3000:]}"


def create_admin(database_url: str) -> None:
    name, password, email = ADMIN
    manage(
        database_url,
        *("createsuperuser", "--noinput", "--username", name, "--email", email),
        DJANGO_SUPERUSER_PASSWORD=password,
    )


class Templates:
    """The run's migrated templates, built on first use."""

    def __init__(self, run_dir: Path, run_id: str) -> None:
        self.dir = run_dir / "db-templates"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # ---- SQLite ------------------------------------------------------------------------------

    def _sqlite_template(self, admin: bool) -> Path:
        """(Called with the lock held.)"""
        path = self.dir / ("admin.sqlite3" if admin else "migrated.sqlite3")
        if not path.exists():
            building = path.with_suffix(".building")
            building.unlink(missing_ok=True)
            if admin:
                shutil.copyfile(self._sqlite_template(admin=False), building)
                create_admin(f"sqlite:///{building}")
            else:
                manage(f"sqlite:///{building}", "migrate", "--noinput", "-v", "0")
            building.rename(path)  # whole or not at all
        return path

    def sqlite(self, path: Path, *, admin: bool = False) -> str:
        """A migrated SQLite database at ``path`` (with the superuser ``admin``/``admin-pw``
        if ``admin``); its ``DATABASE_URL``."""
        with self._locked():
            template = self._sqlite_template(admin)
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    # ---- PostgreSQL --------------------------------------------------------------------------

    def _postgres_template(self, db: Any, admin: bool) -> str:
        """(Called with the lock held.)"""
        name = f"relay_tpl_{self.run_id}_{'admin' if admin else 'migrated'}"
        ready = self.dir / f"{name}.ready"
        if not ready.exists():
            with (self.dir.parent / PG_TEMPLATES_FILE).open("a") as listed:
                listed.write(name + "\n")  # dropped at the end of the run, even if half made
            db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if admin:
                plain = self._postgres_template(db, admin=False)
                db.execute(f'CREATE DATABASE "{name}" TEMPLATE "{plain}"')
                create_admin(f"{POSTGRES}/{name}")
            else:
                db.execute(f'CREATE DATABASE "{name}"')
                manage(f"{POSTGRES}/{name}", "migrate", "--noinput", "-v", "0")
            ready.touch()
        return name

    def postgres(self, db: Any, prefix: str, *, admin: bool = False) -> tuple[str, str]:
        """A new migrated PostgreSQL database named ``prefix`` + a random part, cloned from
        the template through ``db`` (an autocommit connection; the caller drops the
        database); its name and ``DATABASE_URL``."""
        with self._locked():
            template = self._postgres_template(db, admin)
            # A clone needs the template to itself: no other worker builds from it meanwhile.
            name = f"{prefix}{uuid.uuid4().hex[:8]}"
            db.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name, f"{POSTGRES}/{name}"


def drop_postgres_templates(run_dir: Path) -> None:
    """At the end of the run (the controller): drop the PostgreSQL templates it made."""
    listed = run_dir / PG_TEMPLATES_FILE
    if not listed.exists():
        return
    names = sorted(set(listed.read_text().split()))
    try:
        import psycopg

        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5) as db:
            for name in names:
                db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception as exc:  # the tests that used them reported PostgreSQL's state already
        print(f"warning: PostgreSQL templates {names} not dropped: {exc}", file=sys.stderr)
    listed.unlink(missing_ok=True)
