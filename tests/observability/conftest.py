"""Observability tests reuse the relay fixtures: the in-process simulator and its config."""

from __future__ import annotations

from tests.relay.conftest import relay_config, simulator  # noqa: F401
