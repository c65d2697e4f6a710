"""Who may open a session: origin, authentication, connect tickets, draining.

``RelayAccessMiddleware`` runs after Channels' ``AuthMiddlewareStack`` and writes its verdict
to ``scope["relay_refusal"]`` (an ``Ending``) instead of answering HTTP 403: the consumer
accepts, sends an ``error`` message that explains the refusal, and closes with 1008 (1012
while draining).
"""

from __future__ import annotations

import functools
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from channels import auth as channels_auth
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.db import DatabaseError
from django.utils import timezone

from realtime.compat.cancellation import db_call
from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.endings import Ending
from realtime.models import ConnectTicket
from realtime.ops import runtime as relay_runtime

log = logging.getLogger("realtime.edge.access")

TICKET_SALT = "realtime.connect-ticket"


# ---------------------------------------------------------------------------------------------
# Connect tickets
# ---------------------------------------------------------------------------------------------


def issue_ticket(*, user: Any, ttl: int) -> str:
    ticket = ConnectTicket.objects.create(
        user=user, expires_at=timezone.now() + timedelta(seconds=ttl)
    )
    return signing.TimestampSigner(salt=TICKET_SALT).sign(ticket.id.hex)


def redeem_ticket(*, token: str, ttl: int) -> Any | None:
    """The ticket's user, once: a second use, a forged or an expired ticket gives None."""
    try:
        nonce = signing.TimestampSigner(salt=TICKET_SALT).unsign(token, max_age=ttl)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    now = timezone.now()
    used = ConnectTicket.objects.filter(id=nonce, used_at=None, expires_at__gt=now).update(
        used_at=now
    )
    if used != 1:
        return None
    user_id = ConnectTicket.objects.filter(id=nonce).values_list("user_id", flat=True).first()
    return get_user_model().objects.filter(pk=user_id, is_active=True).first()


def prune_tickets() -> int:
    cutoff = timezone.now() - timedelta(hours=1)
    return ConnectTicket.objects.filter(expires_at__lt=cutoff).delete()[0]


# ---------------------------------------------------------------------------------------------
# Origin
# ---------------------------------------------------------------------------------------------


def allowed_origin_patterns(config: RelayConfig) -> list[str]:
    """ALLOWED_HOSTS (as AllowedHostsOriginValidator uses them) plus RELAY_ALLOWED_ORIGINS."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    return hosts + list(config.allowed_origins)


def origin_allowed(origin: bytes | None, config: RelayConfig) -> bool:
    """Browsers always send Origin; a request without one cannot ride a user's cookies."""
    if not origin:
        return True
    return _origin_verdict(origin, tuple(allowed_origin_patterns(config)))


@functools.lru_cache(maxsize=512)  # a page's clients share a few origins; bounded for the rest
def _origin_verdict(origin: bytes, patterns: tuple[str, ...]) -> bool:
    validator = OriginValidator(None, list(patterns))
    try:
        parsed = urlparse(origin.decode("latin-1"))
    except ValueError:
        return False
    return bool(validator.valid_origin(parsed))


# ---------------------------------------------------------------------------------------------
# The middleware
# ---------------------------------------------------------------------------------------------


DATABASE_DOWN = endings.REGISTRY_UNAVAILABLE.because(
    "The relay's database is unavailable, so it cannot check who you are; try again shortly."
)


class GuardedAuthMiddleware(BaseMiddleware):
    """Channels' AuthMiddleware (``scope["user"]`` from the Django session, through Channels'
    public ``get_user``), but a database outage while loading the user (session row, user
    row) becomes a refusal the consumer explains (``registry_unavailable``, 1011) instead of
    an exception that kills the handshake.

    A connection without a session cookie is anonymous at once: channels would find the same
    after a hop to the database thread, which every connect of a storm queues for."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if "session" not in scope:
            raise ValueError("GuardedAuthMiddleware needs SessionMiddleware above it")
        scope = dict(scope)
        if settings.SESSION_COOKIE_NAME not in (scope.get("cookies") or {}):
            scope["user"] = AnonymousUser()
        else:
            try:
                scope["user"] = await channels_auth.get_user(scope)
            except DatabaseError as exc:
                log.warning("websocket auth: database unavailable (%s)", type(exc).__name__)
                scope["user"] = AnonymousUser()
                scope["relay_refusal"] = DATABASE_DOWN
        return await super().__call__(scope, receive, send)


def auth_stack(inner: Any) -> Any:
    """Channels' AuthMiddlewareStack with ``GuardedAuthMiddleware``."""
    return CookieMiddleware(SessionMiddleware(GuardedAuthMiddleware(inner)))


class RelayAccessMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket":
            scope = dict(scope)
            try:
                refusal = await self.refusal(scope)
            except DatabaseError as exc:  # redeeming a ticket
                log.warning("websocket access: database unavailable (%s)", type(exc).__name__)
                refusal = DATABASE_DOWN
            # Draining wins; else the auth layer's database refusal, else this verdict.
            earlier = scope.get("relay_refusal")
            if earlier is not None and refusal is not None and refusal.close_code != 1012:
                refusal = earlier
            scope["relay_refusal"] = refusal or earlier
        return await self.inner(scope, receive, send)

    async def refusal(self, scope: dict[str, Any]) -> Ending | None:
        runtime = relay_runtime.of(scope)
        config = runtime.config
        if runtime.draining:
            return endings.SERVER_RESTARTING.because(
                "This relay worker is shutting down; reconnect to reach another one."
            )
        headers = dict(scope.get("headers") or [])
        origin = headers.get(b"origin")
        if not origin_allowed(origin, config):
            shown = origin.decode("latin-1", "replace")[:100] if origin else ""
            return endings.ORIGIN_NOT_ALLOWED.because(
                f"Origin {shown!r} may not use this relay (see RELAY_ALLOWED_ORIGINS)."
            )
        tickets = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("ticket")
        if tickets:
            user = await db_call(redeem_ticket, token=tickets[0], ttl=config.ticket_ttl_s)
            if user is None:
                return endings.TICKET_INVALID
            scope["user"] = user
        user = scope.get("user")
        if not config.anonymous_allowed and not (user is not None and user.is_authenticated):
            return endings.AUTH_REQUIRED
        return None
