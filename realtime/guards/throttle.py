"""Rate limits shared by every worker: failed logins, connect tickets, connects per user.

Counting uses the ``limits`` library's moving window (exact: N hits in any window of the
given length), stored in Redis when ``REDIS_URL`` is set (the same server as the channel
layer, its own key prefix), else in this process's memory (one worker). A limit that
cannot be checked because Redis is down or hung (every call bounded by
``RELAY_REDIS_TIMEOUT_SECONDS``) lets the request through, and the outage is logged once:
these limits slow attackers down, while the session limits that protect the key (registry
rows, database) fail closed.

- **Failed logins** (``RELAY_LOGIN_FAILURES_PER_USER`` per username as Django's login
  resolves it (NFKC, case-folded: ``login_identity``),
  ``RELAY_LOGIN_FAILURES_PER_ADDRESS`` per client address, within
  ``RELAY_LOGIN_FAILURE_WINDOW_SECONDS``): counted from Django's ``user_login_failed``
  signal, so every ``authenticate()`` with a request counts (login page, admin login, HTTP
  Basic on the ticket endpoint). Once over, ``LoginThrottleMiddleware`` answers those
  endpoints 429 with ``Retry-After`` *before* the password is checked, so guessing stops.
  A successful login clears its username's count (not the address's).
- **Connect tickets** (``RELAY_TICKETS_PER_MINUTE`` per user and per address).
- **Connects** (``RELAY_MAX_CONNECTS_PER_MINUTE``): see ``realtime/guards/budgets.py``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage as AsyncMemoryStorage
from limits.aio.storage import RedisStorage as AsyncRedisStorage
from limits.aio.strategies import MovingWindowRateLimiter as AsyncMovingWindow
from limits.errors import StorageError
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import MovingWindowRateLimiter

from realtime.compat import redis_pools
from realtime.guards.credentials import basic_credentials
from realtime.kernel.config import RelayConfig

log = logging.getLogger("realtime.guards.throttle")

LOGIN_PATHS = ("/accounts/login/", "/admin/login/")
TICKET_PATH = "/api/realtime/ticket"


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # seconds until the oldest counted hit leaves the window


ALLOW = Verdict(True)


def _prefix() -> str:
    return f"{getattr(settings, 'REDIS_CHANNEL_PREFIX', 'relay')}-limits"


class Limiter:
    """One worker's moving-window limiter (sync for views, async for admission).

    With Redis, each call is bounded (``RELAY_REDIS_TIMEOUT_SECONDS`` to connect, to read and to
    wait for one of at most ``RELAY_REDIS_MAX_CONNECTIONS`` pooled connections; the async hit
    also as a whole) and fails open: a limit that cannot be checked lets the request through,
    and the outage is logged once (``realtime.compat.redis_pools``)."""

    def __init__(self, config: RelayConfig | None = None) -> None:
        url = getattr(settings, "REDIS_URL", "")
        self.timeout_s = config.redis_timeout_s if config is not None else 2.0
        self.redis = bool(url)
        if url:
            cap = config.redis_max_connections if config is not None else 20
            prefix = _prefix()
            self.storage: Any = RedisStorage(
                url,
                connection_pool=redis_pools.sync_pool(url, self.timeout_s, cap, "relay-limits"),
                wrap_exceptions=True,
                key_prefix=prefix,
            )
            self.astorage: Any = AsyncRedisStorage(
                url,
                implementation="redispy",
                connection_pool=redis_pools.async_pool(url, self.timeout_s, cap, "relay-limits"),
                wrap_exceptions=True,
                key_prefix=prefix,
            )
        else:
            self.storage, self.astorage = MemoryStorage(), AsyncMemoryStorage()
        self.sync = MovingWindowRateLimiter(self.storage)
        self.aio = AsyncMovingWindow(self.astorage)

    def blocked(self, amount: int, seconds: int, *key: str) -> Verdict:
        """Would one more hit go over? (No hit is counted.)"""
        if not amount:
            return ALLOW
        item = RateLimitItemPerSecond(amount, seconds)
        return self._guard(lambda: self._verdict(self.sync.test(item, *key), item, key), key)

    def hit(self, amount: int, seconds: int, *key: str) -> Verdict:
        """Count one hit; refused (and not counted) when the window is full."""
        if not amount:
            return ALLOW
        item = RateLimitItemPerSecond(amount, seconds)
        return self._guard(lambda: self._verdict(self.sync.hit(item, *key), item, key), key)

    def clear(self, amount: int, seconds: int, *key: str) -> None:
        if amount:
            item = RateLimitItemPerSecond(amount, seconds)
            self._guard(lambda: self.sync.clear(item, *key), key)

    async def ahit(self, amount: int, seconds: int, *key: str) -> Verdict:
        """Count one hit; refused (and not counted) when the window is full."""
        return await self._acheck(self.aio.hit, amount, seconds, key)

    async def ablocked(self, amount: int, seconds: int, *key: str) -> Verdict:
        """Would one more hit go over? (No hit is counted.)"""
        return await self._acheck(self.aio.test, amount, seconds, key)

    async def _acheck(
        self, check: Callable[..., Any], amount: int, seconds: int, key: tuple[str, ...]
    ) -> Verdict:
        if not amount or not self._may_try():
            return ALLOW
        item = RateLimitItemPerSecond(amount, seconds)
        try:
            async with asyncio.timeout(self.timeout_s):
                if await check(item, *key):
                    self._answered()
                    return ALLOW
                stats = await self.aio.get_window_stats(item, *key)
        except (StorageError, TimeoutError) as exc:
            self._unchecked(key, exc)
            return ALLOW
        self._answered()
        return Verdict(False, _seconds_until(stats.reset_time))

    def _verdict(self, allowed: bool, item: Any, key: tuple[str, ...]) -> Verdict:
        if allowed:
            return ALLOW
        return Verdict(False, _seconds_until(self.sync.get_window_stats(item, *key).reset_time))

    def _guard(self, check: Callable[[], Any], key: tuple[str, ...]) -> Any:
        if not self._may_try():
            return ALLOW  # Redis is down: fail open at once (one try every few seconds)
        try:
            result = check()
        except StorageError as exc:
            self._unchecked(key, exc)
            return ALLOW
        self._answered()
        return result

    def _may_try(self) -> bool:
        return not self.redis or redis_pools.may_try("rate limits")

    def _answered(self) -> None:
        if self.redis:
            redis_pools.answered()

    def _unchecked(self, key: tuple[str, ...], exc: BaseException) -> None:
        """Fail open; the outage is logged once, not per request."""
        if self.redis:
            redis_pools.unreachable(f"rate limit {key[0]} not checked", exc)
        else:
            log.warning("rate limit %s not checked (storage: %s)", key[0], type(exc).__name__)


def _seconds_until(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


def relay_of(request: HttpRequest) -> Any:
    """The runtime serving ``request`` (``request.relay``, set by
    realtime.ops.runtime.RequestRuntimeMiddleware): its ``config`` and ``limiter``."""
    try:
        return request.relay  # type: ignore[attr-defined]
    except AttributeError:
        raise RuntimeError(
            "request.relay is not set: put realtime.ops.runtime.RequestRuntimeMiddleware "
            "in MIDDLEWARE before realtime.guards.throttle.LoginThrottleMiddleware"
        ) from None


# ---------------------------------------------------------------------------------------------
# Failed logins
# ---------------------------------------------------------------------------------------------


def login_identity(value: object) -> str:
    """The key a username is throttled under: the identity Django's login resolves it to.

    The login form (``UsernameField``) and the user model (``normalize_username``) apply
    Unicode NFKC, so ``ａｌｉｃｅ`` (fullwidth) logs in as ``alice``; Django compares
    case-insensitively as NFKC + ``casefold`` (``django.contrib.auth.forms``). The throttle uses
    the same: look-alike and case variants of one name share one lockout (issue 25).
    """
    name = get_user_model().normalize_username(str(value or "").strip())
    return unicodedata.normalize("NFKC", name).casefold()[:150]


def _address(request: HttpRequest | None) -> str:
    return str((request.META.get("REMOTE_ADDR") if request is not None else "") or "?")


def login_blocked(config: RelayConfig, limits: Limiter, username: str, address: str) -> Verdict:
    window = config.login_failure_window_s
    verdicts = [limits.blocked(config.login_failures_per_address, window, "login-addr", address)]
    if username:
        per_user = config.login_failures_per_user
        verdicts.append(limits.blocked(per_user, window, "login-user", username))
    refused = [v for v in verdicts if not v.allowed]
    return max(refused, key=lambda v: v.retry_after) if refused else ALLOW


@receiver(user_login_failed, dispatch_uid="realtime.guards.throttle.failed")
def _count_failure(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    relay = getattr(request, "relay", None)
    if relay is None:  # no request, or one the relay did not serve (the test client's login)
        return
    config, limits = relay.config, relay.limiter
    window = config.login_failure_window_s
    limits.hit(config.login_failures_per_address, window, "login-addr", _address(request))
    username = login_identity(credentials.get("username"))
    if username:
        limits.hit(config.login_failures_per_user, window, "login-user", username)


@receiver(user_logged_in, dispatch_uid="realtime.guards.throttle.success")
def _logged_in(sender: Any, request: Any = None, user: Any = None, **_: Any) -> None:
    relay = getattr(request, "relay", None)
    if relay is not None and user is not None:
        login_succeeded(relay.config, relay.limiter, user)


def login_succeeded(config: RelayConfig, limits: Limiter, user: Any) -> None:
    """A right password (a login, or HTTP Basic without one) clears its username's count."""
    username = login_identity(user.get_username())
    limits.clear(
        config.login_failures_per_user, config.login_failure_window_s, "login-user", username
    )


def too_many(request: HttpRequest, verdict: Verdict, message: str) -> HttpResponse:
    """429 with Retry-After: JSON for the API, plain text for the login pages."""
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"error": {"code": "too_many_requests", "message": message}}, status=429
        )
    else:
        response = HttpResponse(message + "\n", status=429, content_type="text/plain")
    response["Retry-After"] = str(verdict.retry_after)
    response["Cache-Control"] = "no-store"
    return response


class LoginThrottleMiddleware:
    """Refuses credential checks for a username or address with too many recent failures."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in (*LOGIN_PATHS, TICKET_PATH):
            username = _presented_username(request)
            if username is not None:
                relay = relay_of(request)
                verdict = login_blocked(relay.config, relay.limiter, username, _address(request))
                if not verdict.allowed:
                    return too_many(
                        request,
                        verdict,
                        f"Too many failed logins; try again in {verdict.retry_after} s.",
                    )
        return self.get_response(request)


def _presented_username(request: HttpRequest) -> str | None:
    """The username this request asks to check a password for, or None (no credentials)."""
    if request.path == TICKET_PATH:
        credentials = basic_credentials(request)
        return login_identity(credentials[0]) if credentials is not None else None
    return login_identity(request.POST.get("username"))
