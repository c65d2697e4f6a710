"""Fixtures for the tools library: a runner that records its notices."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from realtime.edge import protocol
from realtime.tools import ToolNotice, ToolRegistry, ToolRunner


def shown(notice: ToolNotice) -> dict[str, Any]:
    """The notice as the browser receives it (the WebSocket edge's ``tool_call`` message)."""
    return json.loads(protocol.encode(notice))


class Notices(list[ToolNotice]):
    def statuses(self, call_id: str) -> list[str]:
        return [n.status for n in self if n.call_id == call_id]

    def last(self, call_id: str) -> ToolNotice:
        return [n for n in self if n.call_id == call_id][-1]


@pytest.fixture
def notices() -> Notices:
    return Notices()


@pytest.fixture
def tool_threads() -> Iterator[ThreadPoolExecutor]:
    """Threads of this test only: a pooled thread keeps the database connection an earlier
    test gave it (an in-memory SQLite connection is never closed), which a test without
    database access may not touch."""
    executor = ThreadPoolExecutor(4, thread_name_prefix="relay-tool-test")
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
def make_runner(notices: Notices, tool_threads: ThreadPoolExecutor) -> Any:
    def make(registry: ToolRegistry, **options: Any) -> ToolRunner:
        options.setdefault("session_id", "00000000-0000-4000-8000-000000000001")
        options.setdefault("on_notice", notices.append)
        return ToolRunner(registry, executor=tool_threads, **options)

    return make
