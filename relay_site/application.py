"""Build the ASGI application around a runtime: HTTP through Django, /realtime through Channels.

``relay_site/asgi.py`` builds it from the environment for any ASGI server; ``manage.py serve``
and the tests build their own runtime (e.g. pointed at an embedded simulator) and pass it.
Building it installs the framework patches of a serving process (realtime/compat: each
checked against what it patches, off with one warning if that changed); other ``manage.py``
commands never load them.
"""

from __future__ import annotations

import sys
from typing import Any

from realtime.kernel.config import ConfigError
from realtime.ops.runtime import Runtime


def build_application(runtime: Runtime | None = None) -> Any:
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()  # sets Django up first

    from django.conf import settings

    from realtime import compat
    from realtime.compat import redis_pools
    from realtime.edge.access import RelayAccessMiddleware, auth_stack
    from realtime.edge.proxy import ForwardedMiddleware
    from realtime.edge.routing import RefuseUnknownPaths, websocket_urlpatterns
    from realtime.ops import drain, metrics
    from realtime.ops import runtime as relay_runtime

    if runtime is None:  # another ASGI server (relay_site/asgi.py): manage.py's checks never ran
        if settings.RELAY_SECRET_KEY_PROBLEM:
            sys.exit(f"Configuration error: {settings.RELAY_SECRET_KEY_PROBLEM}")
    runtime = relay_runtime.install(runtime or Runtime.from_environment())
    try:
        runtime.extensions  # noqa: B018 (tools, policy and client messages load at start-up)
    except ConfigError as exc:
        sys.exit(f"Configuration error: {exc}")
    if settings.REDIS_URL:  # said once here if unreachable, not by every later call
        redis_pools.probe_at_start(settings.REDIS_URL, runtime.config.redis_timeout_s)
    metrics.setup_process()
    compat.install_server_patches()
    drain.install(runtime.drain)
    router = ProtocolTypeRouter(
        {
            "http": django_app,
            # Origin (ALLOWED_HOSTS + RELAY_ALLOWED_ORIGINS), session or ticket auth,
            # draining: refusals are explained to the client by the consumer (error + code).
            # A database outage while loading the user is a refusal too (access.auth_stack).
            # A path no route serves: 403 and one INFO line, before any of that.
            "websocket": RefuseUnknownPaths(
                auth_stack(RelayAccessMiddleware(URLRouter(websocket_urlpatterns)))
            ),
        }
    )
    # The client's address behind trusted proxies only (RELAY_TRUSTED_PROXIES), before
    # anything reads it.
    return relay_runtime.RuntimeMiddleware(ForwardedMiddleware(router), runtime)
