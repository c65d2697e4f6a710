"""``manage.py check``: the deployment's extensions load (RELAY_TOOLS, _SESSION_POLICY, …)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from realtime.kernel.config import ConfigError


@checks.register()
def extensions_load(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from realtime.ops import runtime

    try:
        runtime.current().extensions  # noqa: B018 (loading is the check)
    except ConfigError as exc:
        return [checks.Error(str(exc), id="realtime.E001")]
    return []


@checks.register()
def secret_key_set(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A paid upstream (or DJANGO_DEBUG=false) needs DJANGO_SECRET_KEY (guards/secret_key.py)."""
    from django.conf import settings

    problem = getattr(settings, "RELAY_SECRET_KEY_PROBLEM", None)
    if problem:
        return [checks.Error(problem, id="realtime.E010")]
    if getattr(settings, "RELAY_SECRET_KEY_SOURCE", "") == "memory":
        return [
            checks.Warning(
                "DJANGO_SECRET_KEY is not set and .dev-secret-key cannot be written: this "
                "process signs logins and connect tickets with a key of its own, which other "
                "workers do not share",
                id="realtime.W011",
            )
        ]
    return []
