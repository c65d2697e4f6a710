"""HTTP views: the browser demo page and the static files it needs."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from django.contrib.staticfiles.views import serve as staticfiles_serve
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django.views.decorators.http import require_safe


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    """The demo page. It opens the relay's WebSocket at /realtime from the browser."""
    user = request.user
    login_url = f"{resolve_url(settings.LOGIN_URL)}?next={quote(request.path, safe='/')}"
    relay = request.relay  # type: ignore[attr-defined]  (RequestRuntimeMiddleware)
    return render(
        request,
        "realtime/index.html",
        {
            "user_authenticated": user.is_authenticated,
            "username": user.get_username() if user.is_authenticated else "",
            "login_url": login_url,
            "tools": [
                {
                    "name": spec.name,
                    "description": spec.description.split("\n", 1)[0],
                    "try": spec.examples[0] if spec.examples else f"use {spec.name}",
                }
                for spec in relay.extensions.tools
            ],
            "simulator": relay.config.provider == "simulator",
        },
    )


@require_safe
def static_file(request: HttpRequest, path: str) -> HttpResponse:
    """Serve /static/ from the apps' static directories (the page's JS/CSS and the admin's).

    Plain daphne serves no static files, and the project runs as one daphne process without a
    web server in front, so Django serves them itself through the staticfiles finders (only the
    configured app directories, path traversal is rejected). ``insecure=True`` lifts the
    DEBUG-only guard; for heavy traffic put ``collectstatic`` output behind a web server or CDN.
    """
    response = staticfiles_serve(request, path, insecure=True)
    response["Cache-Control"] = "no-cache"  # revalidate (Last-Modified) so edits show at once
    return response
