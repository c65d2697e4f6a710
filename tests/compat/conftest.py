"""Patches change process-wide classes: each test that decides one again undoes it after."""

from __future__ import annotations

from collections.abc import Iterator

import daphne.server  # noqa: F401  (as under daphne: Twisted's asyncio reactor, first)
import pytest

from realtime.compat import patching


@pytest.fixture
def redecide() -> Iterator[list[patching.Patch]]:
    """Patches a test installs afresh (``reset`` first): reset again after it."""
    patches: list[patching.Patch] = []
    yield patches
    for patch in patches:
        patching.reset(patch.name)


def fresh(redecide: list[patching.Patch], patch: patching.Patch) -> patching.Patch:
    patching.reset(patch.name)
    redecide.append(patch)
    return patch


def warnings_of(caplog) -> list[str]:
    """What the patches logged (one warning per patch left off)."""
    return [r.getMessage() for r in caplog.records if r.name == "realtime.compat"]
