"""What the soak command samples: the event loop's task count on /metrics. The soak run itself
(start and end samples, nothing grew: fds, tasks) runs from the installed wheel:
tests/test_installed_copy.py."""

from __future__ import annotations

import re

import pytest
from django.test import AsyncClient


@pytest.mark.django_db
async def test_metrics_reports_the_event_loop_task_count() -> None:
    body = (await AsyncClient().get("/metrics")).content.decode()
    match = re.search(r"^relay_asyncio_tasks (\d+(?:\.\d+)?)$", body, re.M)
    assert match and float(match.group(1)) >= 1
