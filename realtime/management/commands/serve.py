"""`manage.py serve`: the relay under daphne with explicit flags (and the simulator if needed)."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Any

import daphne.server  # noqa: F401  (first: it installs Twisted's asyncio reactor)
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from realtime.compat import daphne_server
from realtime.compat.daphne_guards import install_request_deadlines
from realtime.ops import drain
from realtime.ops.runtime import Runtime
from realtime.ops.supervisor import (
    LISTEN_BACKLOG,
    WorkerPool,
    default_workers,
    follow_supervisor,
    listening_sockets,
)

BANNER = """
==============================================================================
  OFFLINE SIMULATOR: no OPENAI_API_KEY or AZURE_OPENAI_* is configured, so the
  relay talks to its built-in simulator of {api} at
  {url}. No real model is called and nothing is billed.
==============================================================================
"""
SIMULATED_API = {"realtime": "the Realtime API", "live": "GPT-Live"}


REPLY_ROOM = 256 * 1024  # the largest reply frame the relay writes, with room to spare


class Command(BaseCommand):
    help = "Serve the relay with daphne (and the offline simulator when no provider is set)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="0.0.0.0", help="bind address (default 0.0.0.0)")
        parser.add_argument("--port", type=int, help="default: $PORT or 8080")
        parser.add_argument("--fd", type=int, help="serve on an inherited socket fd instead")
        parser.add_argument(
            "--no-migrate",
            action="store_true",
            help="do not apply migrations first (default: applied for the embedded SQLite)",
        )
        parser.add_argument("--ping-interval", type=int, default=20)
        parser.add_argument("--ping-timeout", type=int, default=30)
        parser.add_argument("--application-close-timeout", type=int, default=10)
        parser.add_argument(
            "--handshake-timeout",
            type=float,
            default=10.0,
            help="seconds a client has to send a whole request head (a page request or the "
            "WebSocket upgrade), counted from accept or its previous response; else 408 and "
            "close (slowloris). 0 = off. Default 10",
        )
        parser.add_argument(
            "--first-message-timeout",
            type=float,
            default=5.0,
            help="seconds a connection may stay silent before the first byte of a request "
            "(from accept or its previous response); else closed. 0 = off. Default 5",
        )
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="behind a reverse proxy: believe X-Forwarded-For/-Proto from the peers in "
            "RELAY_TRUSTED_PROXIES (required with this flag)",
        )
        parser.add_argument("--supervisor", type=int, help=argparse.SUPPRESS)  # serve's own workers
        parser.add_argument(
            "--workers",
            type=int,
            help="daphne processes serving the port (default: $RELAY_WORKERS, else every core "
            "when REDIS_URL is set, one otherwise)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from relay_site.application import build_application

        sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        if sqlite and not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)

        runtime = Runtime.from_environment()
        config = runtime.config
        # A worker of `serve --workers N` (started with --supervisor): its supervisor already
        # said what is served where; the worker says nothing of its own.
        worker = options["supervisor"] is not None
        if options["proxy_headers"] and not config.trusted_proxies:
            # Believing every peer's X-Forwarded-For lets any client pick its address
            # (loopback opens /metrics): refuse rather than warn.
            raise CommandError(
                "--proxy-headers needs RELAY_TRUSTED_PROXIES: the addresses (or CIDR networks) "
                "of the proxies whose X-Forwarded-For may be believed"
            )
        if config.provider == "simulator" and not config.endpoint:
            from realtime.ops.embedded import start_simulator_thread

            simulator = start_simulator_thread()
            runtime.config = config.with_endpoint(simulator.base_url)
            api = SIMULATED_API.get(config.upstream_api, config.upstream_api)
            self.stdout.write(BANNER.format(api=api, url=simulator.base_url))
        if config.provider == "azure" and config.dialect == "beta" and not worker:
            self.stderr.write(
                "warning: AZURE_OPENAI_API_VERSION selects the legacy Azure preview (beta) "
                "path, which Microsoft deprecated from 2026-04-30; unset it to use /openai/v1."
            )
        port = options["port"] or config.port
        workers = self._workers(options, config.workers)
        shown = "localhost" if options["host"] in ("0.0.0.0", "::", "") else options["host"]
        if not worker:
            self.stdout.write(
                f"Relay on http://{shown}:{port}/ (WebSocket /realtime) → "
                f"{runtime.config.provider_label}; {workers} worker process(es)"
            )
            if config.trusted_proxies:
                trusted = ", ".join(str(n) for n in config.trusted_proxies)
                self.stdout.write(f"Forwarded headers believed from: {trusted}")
        if workers > 1:
            self._serve_workers(options, workers, port, runtime)
            return
        # autobahn applies daphne's message limit to the relay's replies as well: never below
        # REPLY_ROOM, or lowered client limits would make every larger reply end the session.
        frame_limit = max(config.max_text_bytes, config.max_binary_bytes, REPLY_ROOM)
        argv = [
            "--ping-interval", str(options["ping_interval"]),
            "--ping-timeout", str(options["ping_timeout"]),
            "--application-close-timeout", str(options["application_close_timeout"]),
            "--websocket_timeout", "-1",
            "--websocket_connect_timeout", "10",
            # Above the larger of the relay's own limits, a message is discarded as it streams
            # in (realtime/compat/daphne_guards.py): frame_too_large + 1009 at any size.
            "--websocket-max-message-size", str(frame_limit),
            "--websocket-max-frame-size", str(frame_limit),
            "-v", "1",
        ]  # fmt: skip
        if options["supervisor"]:
            follow_supervisor(options["supervisor"])  # ends with it, even on kill -9
        if options["fd"] is not None:
            argv += ["--fd", str(options["fd"])]
        else:
            argv += ["-e", tcp_endpoint(options["host"], port)]
        # Never daphne's --proxy-headers (it believes the leftmost, client-written address):
        # realtime/edge/proxy.py resolves forwarded headers from RELAY_TRUSTED_PROXIES only.
        install_request_deadlines(
            first_message=options["first_message_timeout"], handshake=options["handshake_timeout"]
        )
        if runtime.config.provider == "simulator" and runtime.config.endpoint:
            # The embedded simulator, for an application daphne would build from the
            # environment (compat/daphne_server.py, if its command line changed).
            os.environ["REALTIME_SIMULATOR_URL"] = runtime.config.endpoint
        daphne_server.run(
            argv,
            lambda: build_application(runtime),
            before_run=settle_heap,
            on_listen=drain.serving,
            until_drained=drain.until_drained,
        )

    def _workers(self, options: dict[str, Any], configured: int) -> int:
        redis = "redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"].lower()
        workers = options["workers"] or configured or default_workers(redis)
        if workers > 1 and not redis:
            raise CommandError(
                f"{workers} workers need the Redis channel layer (set REDIS_URL): with the "
                "in-memory layer an administrator could not reach sessions on other processes"
            )
        if workers > 1 and options["fd"] is not None:
            raise CommandError("--fd serves one process; use --workers 1 with it")
        return workers

    def _serve_workers(
        self, options: dict[str, Any], workers: int, port: int, runtime: Runtime
    ) -> None:
        """Each worker is this command again, on one inherited socket (``--fd``): the same
        daphne flags, request deadlines and drain as a single worker."""
        sockets = listening_sockets(options["host"], port, workers)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "relay_site.settings"}
        if runtime.config.provider == "simulator" and runtime.config.endpoint:
            env["REALTIME_SIMULATOR_URL"] = runtime.config.endpoint  # the embedded one
        passed = ["ping_interval", "ping_timeout", "application_close_timeout"]
        passed += ["handshake_timeout", "first_message_timeout"]
        flags = [f"--{name.replace('_', '-')}={options[name]}" for name in passed]
        if options["proxy_headers"]:
            flags.append("--proxy-headers")

        def argv(fd: int) -> list[str]:
            serve = ["serve", "--fd", str(fd), "--workers", "1", "--no-migrate", *flags]
            serve += ["--supervisor", str(os.getpid())]
            return [sys.executable, "-m", "django", *serve]

        pool = WorkerPool(
            argv=argv, env=env, sockets=sockets, drain_seconds=runtime.config.drain_seconds
        )
        sys.exit(pool.run())


def settle_heap() -> None:
    """Everything loaded at start-up (Django, the SDK, Twisted: ~10^6 objects) lives as long as
    the process: move it out of the collector's sight (``gc.freeze``), so a full collection
    during a connect storm walks only what the sessions made."""
    gc.collect()
    gc.freeze()


def tcp_endpoint(host: str, port: int) -> str:
    """daphne's ``-b HOST -p PORT`` as a Twisted endpoint, with a listen backlog for bursts."""
    interface = host.strip("[]").replace(":", r"\:")
    return f"tcp:port={port}:interface={interface}:backlog={LISTEN_BACKLOG}"
