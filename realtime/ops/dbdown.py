"""HTTP pages while the database is down: 503 with Retry-After, not a 500 and a traceback.

A view that needs the database (a login, the admin, the ticket endpoint) cannot work without
it; saying so lets clients and load balancers retry instead of reporting a server bug.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger("realtime.ops.dbdown")

MESSAGE = "the relay's database is unavailable; try again shortly"


def unavailable(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"error": {"code": "registry_unavailable", "message": MESSAGE}}, status=503
        )
    else:
        response = HttpResponse(MESSAGE + "\n", status=503, content_type="text/plain")
    response["Retry-After"] = "5"
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        except DatabaseError as exc:  # raised by a middleware after this one
            log.warning("%s %s: database unavailable (%s)", request.method, request.path, exc)
            return unavailable(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DatabaseError):
            log.warning("%s %s: database unavailable (%s)", request.method, request.path, exception)
            return unavailable(request)
        return None
