"""Project-wide test settings."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_background_reaper(settings):
    """The per-worker reaper is a process-lifetime task; tests that need it start it."""
    settings.RELAY_REAPER_ENABLED = False
