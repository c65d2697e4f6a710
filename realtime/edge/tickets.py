"""POST /api/realtime/ticket: a short-lived, single-use connect ticket for the WebSocket.

For non-browser clients and frontends on another origin: authenticate here (Django session
+ CSRF token, or HTTP Basic over TLS), then open ``/realtime?ticket=…`` within
RELAY_TICKET_TTL_SECONDS. No long-lived secret ever goes into a URL.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, get_user_model
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from realtime.edge.access import issue_ticket, origin_allowed
from realtime.guards import throttle
from realtime.guards.credentials import basic_credentials
from realtime.guards.throttle import Limiter
from realtime.kernel.config import RelayConfig
from realtime.ops import dbdown


def _basic_auth_user(request: HttpRequest) -> Any | None:
    credentials = basic_credentials(request)
    if credentials is None:
        return None
    # The name as the login form resolves it (NFKC, as ``UsernameField``/``normalize_username``
    # do): one account, one lockout, whichever way its name is typed.
    username = get_user_model().normalize_username(credentials[0].strip())
    user = authenticate(request, username=username, password=credentials[1])
    if user is not None:
        relay = request.relay  # type: ignore[attr-defined]
        # HTTP Basic logs no one in: no signal clears the count.
        throttle.login_succeeded(relay.config, relay.limiter, user)
    return user


def _error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="realtime relay"'
    return response


@csrf_exempt  # Basic-auth clients have no CSRF cookie; session clients are checked below.
def ticket(request: HttpRequest) -> HttpResponse:
    try:
        return _ticket(request)
    except DatabaseError:  # fail closed, and say so: no ticket can be issued or redeemed
        return dbdown.unavailable(request)


def _ticket(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _error(405, "method_not_allowed", "use POST")
    user = _basic_auth_user(request)
    if user is None and "Authorization" in request.headers:
        return _error(401, "bad_credentials", "wrong username or password")
    if user is None:
        if not request.user.is_authenticated:
            return _error(401, "auth_required", "log in or use HTTP Basic authentication")
        if CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {}) is not None:
            return _error(403, "csrf_failed", "missing or wrong CSRF token")
        user = request.user
    relay = request.relay  # type: ignore[attr-defined]
    config = relay.config
    refused = _ticket_rate(request, config, relay.limiter, user)
    if refused is not None:
        return refused
    ttl = config.ticket_ttl_s
    token = issue_ticket(user=user, ttl=ttl)
    response = JsonResponse(
        {"ticket": token, "expires_in": ttl, "url": f"/realtime?ticket={token}"}
    )
    origin = request.headers.get("Origin")
    if origin and origin_allowed(origin.encode(), config):
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    response["Cache-Control"] = "no-store"
    return response


def _ticket_rate(
    request: HttpRequest, config: RelayConfig, limits: Limiter, user: Any
) -> HttpResponse | None:
    """RELAY_TICKETS_PER_MINUTE per user and per client address, across workers."""
    per_minute = config.tickets_per_minute
    address = str(request.META.get("REMOTE_ADDR") or "?")
    for key in (("ticket-user", str(user.pk)), ("ticket-addr", address)):
        verdict = limits.hit(per_minute, 60, *key)
        if not verdict.allowed:
            return throttle.too_many(
                request,
                verdict,
                f"more than {per_minute} connect tickets a minute; "
                f"try again in {verdict.retry_after} s",
            )
    return None
