"""ASGI entry point: HTTP through Django, WebSockets at /realtime through Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relay_site.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime import drain  # noqa: E402
from realtime.access import RelayAccessMiddleware  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

drain.install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin (ALLOWED_HOSTS + RELAY_ALLOWED_ORIGINS), session or ticket auth, draining:
        # refusals are explained to the client by the consumer (error message + close code).
        "websocket": AuthMiddlewareStack(RelayAccessMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
