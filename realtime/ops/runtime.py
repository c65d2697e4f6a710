"""The relay's per-process runtime: what one worker process holds, created once.

A ``Runtime`` carries the configuration, the upstream SDK clients and credential, the live
sessions (for drain), the draining flag and the registry reaper. ``build_application``
(relay_site/application.py) creates it and hands it to every connection through the ASGI
scope (``scope["relay"]``); Django views, middleware and signal receivers find it as
``request.relay`` (``RequestRuntimeMiddleware``) and take the parts they need from it;
management commands use ``current()``. Nothing here runs at import: ``serve`` and the
tests build a runtime explicitly (``Runtime(config)``, ``install``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils import timezone

from realtime.extensions import Extensions
from realtime.kernel.config import RelayConfig, load_config

if TYPE_CHECKING:
    from realtime.guards.throttle import Limiter
    from realtime.ops.batching import PresenceWrites, Registrar
    from realtime.ops.resume_store import ResumeStore
    from realtime.upstream import UpstreamClients

log = logging.getLogger("realtime.ops.runtime")


class Drainable(Protocol):
    async def drain(self) -> None: ...


class Runtime:
    def __init__(self, config: RelayConfig) -> None:
        from realtime.upstream import UpstreamClients

        self._extensions: Extensions | None = None
        self.config = config
        self.clients: UpstreamClients = UpstreamClients()
        self.started_at: datetime = timezone.now()
        self.draining = False
        self._sessions: weakref.WeakSet[Drainable] = weakref.WeakSet()
        self._registrar: Registrar | None = None
        self._presence_writes: PresenceWrites | None = None
        self._limiter: Limiter | None = None
        self._resume_store: ResumeStore | None = None
        self._reapers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    @classmethod
    def from_environment(cls) -> Runtime:
        return cls(load_config(os.environ))

    @property
    def config(self) -> RelayConfig:
        return self._config

    @config.setter
    def config(self, config: RelayConfig) -> None:
        self._config = config
        extensions = self._extensions
        if extensions is not None and extensions.source != Extensions.source_of(config):
            self._extensions = None  # loaded again, from the new settings, on next use

    @property
    def extensions(self) -> Extensions:
        """Tools, session policy and client messages (loaded on first use; ConfigError)."""
        if self._extensions is None:
            self._extensions = Extensions.load(self._config)
        return self._extensions

    @property
    def registrar(self) -> Registrar:
        """Registers new sessions in batches (realtime.ops.batching.Registrar)."""
        if self._registrar is None:
            from realtime.ops.batching import Registrar

            self._registrar = Registrar()
        return self._registrar

    @property
    def presence_writes(self) -> PresenceWrites:
        """Writes of the sessions' rows in batches (realtime.ops.batching.PresenceWrites)."""
        if self._presence_writes is None:
            from realtime.ops.batching import PresenceWrites

            self._presence_writes = PresenceWrites()
        return self._presence_writes

    @property
    def limiter(self) -> Limiter:
        """This worker's rate limiter (realtime.guards.throttle.Limiter: Redis when set)."""
        if self._limiter is None:
            from realtime.guards.throttle import Limiter

            self._limiter = Limiter(self.config)
        return self._limiter

    @property
    def resume_store(self) -> ResumeStore:
        """Resume tokens and the state of sessions that may be resumed (Redis when set)."""
        if self._resume_store is None:
            from realtime.ops import resume_store

            self._resume_store = resume_store.build(self.config)
        return self._resume_store

    # ---- live sessions and drain ------------------------------------------------------------

    def register(self, session: Drainable) -> None:
        self._sessions.add(session)

    def unregister(self, session: Drainable) -> None:
        self._sessions.discard(session)

    @property
    def live_count(self) -> int:
        return len(self._sessions)

    async def drain(self, timeout: float | None = None) -> int:
        """SIGTERM: refuse new sessions, end every live one with 1012, wait (bounded)."""
        self.draining = True
        sessions = list(self._sessions)
        timeout = self.config.drain_seconds if timeout is None else timeout
        if sessions:
            log.warning("draining %d session(s) before shutdown", len(sessions))
            ends = [asyncio.ensure_future(s.drain()) for s in sessions]
            _, pending = await asyncio.wait(ends, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("drain: %d session(s) did not end within %.0f s", len(pending), timeout)
        else:
            log.info("shutting down: no live sessions")
        return len(sessions)

    # ---- the registry reaper ----------------------------------------------------------------

    def ensure_reaper(self) -> None:
        """Start this worker's reaper on the running loop (once per loop)."""
        if not self.config.reaper_enabled:
            return
        from realtime.ops.reaper import reap_forever

        loop = asyncio.get_running_loop()
        task = self._reapers.get(loop)
        if task is None or task.done():
            self._reapers[loop] = loop.create_task(
                reap_forever(self), name="realtime-worker-reaper"
            )

    async def aclose(self) -> None:
        for task in self._reapers.values():
            task.cancel()
        self._reapers.clear()
        await self.clients.aclose()
        if self._resume_store is not None:
            await self._resume_store.aclose()


_current: Runtime | None = None


def current() -> Runtime:
    """This process's runtime (built from the environment on first use)."""
    global _current
    if _current is None:
        _current = Runtime.from_environment()
    return _current


def install(runtime: Runtime) -> Runtime:
    """Make ``runtime`` this process's runtime (serve, the ASGI application, tests)."""
    global _current
    _current = runtime
    return runtime


@contextmanager
def installed(runtime: Runtime) -> Iterator[Runtime]:
    """Use ``runtime`` for the duration of a block (tests), then restore the previous one."""
    global _current
    previous, _current = _current, runtime
    try:
        yield runtime
    finally:
        _current = previous


def of(scope_or_request: Any) -> Runtime:
    """The runtime that serves this ASGI scope or Django request (``current()`` without one)."""
    scope = getattr(scope_or_request, "scope", scope_or_request)
    if isinstance(scope, dict):
        runtime = scope.get("relay")
        if runtime is not None:
            return runtime
    return current()


class RuntimeMiddleware:
    """Puts the runtime into every ASGI scope as ``scope["relay"]``."""

    def __init__(self, inner: Any, runtime: Runtime) -> None:
        self.inner = inner
        self.runtime = runtime

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "relay": self.runtime}
            self.runtime.ensure_reaper()  # once per loop: a worker reaps from its first request
        return await self.inner(scope, receive, send)


class RequestRuntimeMiddleware:
    """Django middleware: ``request.relay`` is the runtime that serves the request (the ASGI
    scope's, else this process's). Views, the login throttle and its signal receivers take
    the parts they need from it instead of looking the runtime up themselves."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        request.relay = of(request)
        return self.get_response(request)
