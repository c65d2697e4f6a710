"""``manage.py check``: the deployment's extensions load (RELAY_TOOLS, _SESSION_POLICY, …)."""

from __future__ import annotations

from typing import Any

from django.core import checks

from realtime.config import ConfigError


@checks.register()
def extensions_load(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from realtime import runtime

    try:
        runtime.current().extensions  # noqa: B018 (loading is the check)
    except ConfigError as exc:
        return [checks.Error(str(exc), id="realtime.E001")]
    return []
