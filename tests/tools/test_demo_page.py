"""The demo page lists the session's tools with a phrase to try, and on the simulator says how
it decides to call one (a new user's first "what time is it" must not go unanswered)."""

from __future__ import annotations

import re

import pytest
from django.test import Client as HttpClient

from realtime.kernel.config import load_config
from tests.relay.conftest import use_config

pytestmark = pytest.mark.django_db


def tools_panel(html: str) -> str:
    match = re.search(r'<ul id="tools".*?</ul>', html, re.S)
    assert match, "no tools panel"
    return match.group(0)


def test_the_page_lists_the_tools_with_a_phrase_to_try_and_the_simulators_rule() -> None:
    use_config(load_config({"RELAY_TOOLS": "examples"}))
    html = HttpClient().get("/").content.decode()
    panel = tools_panel(html)
    names = re.findall(r"<code>(\w+)</code>", panel)
    assert names == ["get_current_time", "add_note", "list_notes"]
    assert 'data-text="what time is it"' in panel  # get_current_time's first example
    assert "The current date and time" in panel  # its description
    hint = re.search(r'<p id="simulator-tools-hint".*?</p>', html, re.S)
    assert hint and "example phrases or its name" in hint.group(0)
    assert "<code>use get_current_time</code>" in hint.group(0)


def test_a_tool_without_examples_is_tried_by_name_and_a_real_upstream_gets_no_simulator_hint() -> (
    None
):
    use_config(
        load_config({"RELAY_TOOLS": "tests.tools.sample_tools", "OPENAI_API_KEY": "sk-x" * 8})
    )
    html = HttpClient().get("/").content.decode()
    panel = tools_panel(html)
    first = re.search(r"<code>(\w+)</code>", panel).group(1)
    assert f'data-text="use {first}"' in panel
    assert "simulator-tools-hint" not in html


def test_without_tools_there_is_no_tools_panel() -> None:
    use_config(load_config({}))
    html = HttpClient().get("/").content.decode()
    assert 'id="tools"' not in html and "simulator-tools-hint" not in html
