"""Fixtures for the tools library: a runner that records its notices."""

from __future__ import annotations

from typing import Any

import pytest

from realtime.tools import ToolNotice, ToolRegistry, ToolRunner


class Notices(list[ToolNotice]):
    def statuses(self, call_id: str) -> list[str]:
        return [n.status for n in self if n.call_id == call_id]

    def last(self, call_id: str) -> ToolNotice:
        return [n for n in self if n.call_id == call_id][-1]


@pytest.fixture
def notices() -> Notices:
    return Notices()


@pytest.fixture
def make_runner(notices: Notices) -> Any:
    def make(registry: ToolRegistry, **options: Any) -> ToolRunner:
        options.setdefault("session_id", "00000000-0000-4000-8000-000000000001")
        return ToolRunner(registry, on_notice=notices.append, **options)

    return make
