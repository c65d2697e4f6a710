"""`manage.py serve`: the relay under daphne with explicit flags (and the simulator if needed)."""

from __future__ import annotations

import os
import sys
from typing import Any

from daphne.cli import CommandLineInterface
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from realtime.runtime import Runtime
from realtime.supervisor import WorkerPool, default_workers, listening_sockets

BANNER = """
==============================================================================
  OFFLINE SIMULATOR: no OPENAI_API_KEY or AZURE_OPENAI_* is configured, so the
  relay talks to its built-in simulator of the Realtime API at
  {url}. No real model is called and nothing is billed.
==============================================================================
"""


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
        parser.add_argument("--proxy-headers", action="store_true", help="trust X-Forwarded-For")
        parser.add_argument(
            "--workers",
            type=int,
            help="daphne processes sharing the port (default: $RELAY_WORKERS, else every core "
            "when REDIS_URL is set, one otherwise)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from relay_site.application import build_application

        sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
        if sqlite and not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)

        runtime = Runtime.from_environment()
        config = runtime.config
        if config.provider == "simulator" and not config.endpoint:
            from realtime.embedded import start_simulator_thread

            simulator = start_simulator_thread()
            runtime.config = config.with_endpoint(simulator.base_url)
            self.stdout.write(BANNER.format(url=simulator.base_url))
        if config.provider == "azure" and config.dialect == "beta":
            self.stderr.write(
                "warning: AZURE_OPENAI_API_VERSION selects the legacy Azure preview (beta) "
                "path, which Microsoft deprecated from 2026-04-30; unset it to use /openai/v1."
            )
        port = options["port"] or config.port
        workers = self._workers(options, config.workers)
        shown = "localhost" if options["host"] in ("0.0.0.0", "::", "") else options["host"]
        self.stdout.write(
            f"Relay on http://{shown}:{port}/ (WebSocket /realtime) → "
            f"{runtime.config.provider_label}; {workers} worker process(es)"
        )
        argv = [
            "--ping-interval", str(options["ping_interval"]),
            "--ping-timeout", str(options["ping_timeout"]),
            "--application-close-timeout", str(options["application_close_timeout"]),
            "--websocket_timeout", "-1",
            "--websocket_connect_timeout", "10",
            # One below daphne's own drop-without-close-frame: the relay answers 1009 first.
            "--websocket-max-message-size", str(1024 * 1024),
            "-v", "1",
        ]  # fmt: skip
        if options["proxy_headers"]:
            argv.append("--proxy-headers")
        if workers > 1:
            self._serve_workers(argv, workers, options["host"], port, runtime)
            return
        if options["fd"] is not None:
            argv += ["--fd", str(options["fd"])]
        else:
            argv += ["-b", options["host"], "-p", str(port)]
        application = build_application(runtime)
        RelayDaphne(application).run([*argv, "relay_site.asgi:application"])

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
        self, flags: list[str], workers: int, host: str, port: int, runtime: Runtime
    ) -> None:
        sockets = listening_sockets(host, port, workers)
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "relay_site.settings"}
        if runtime.config.provider == "simulator" and runtime.config.endpoint:
            env["REALTIME_SIMULATOR_URL"] = runtime.config.endpoint  # the embedded one

        def argv(fd: int) -> list[str]:
            app = "relay_site.asgi:application"
            return [sys.executable, "-m", "daphne", *flags, "--fd", str(fd), app]

        pool = WorkerPool(
            argv=argv,
            env=env,
            sockets=sockets,
            drain_seconds=runtime.config.drain_seconds,
        )
        sys.exit(pool.run())


class RelayDaphne(CommandLineInterface):
    """daphne's command line, serving an application built here (with this runtime) instead
    of importing one by path: every daphne flag keeps working."""

    def __init__(self, application: Any) -> None:
        super().__init__()
        self.application = application

    def load_asgi_app(self, asgi_app_path: str) -> Any:
        return self.application
