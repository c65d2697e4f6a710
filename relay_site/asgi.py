"""ASGI entry point for any ASGI server (``daphne relay_site.asgi:application``).

The runtime is built from the environment; ``manage.py serve`` builds its own instead.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "relay_site.settings")

from relay_site.application import build_application

application = build_application()
