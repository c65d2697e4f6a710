"""RELAY_TOOLS: loading tool modules, and the errors that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from realtime.kernel.config import ConfigError
from realtime.tools import ToolsConfigError, load_tools
from realtime.tools.loader import module_paths

ModuleMaker = Callable[[str], str]


@pytest.fixture
def tool_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleMaker]:
    """Write a module of tools; its (unique) import name is returned."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(source: str) -> str:
        name = f"relay_tools_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(
            "from realtime.tools import ToolContext, tool\n" + textwrap.dedent(source)
        )
        made.append(name)
        return name

    yield make
    for name in made:
        sys.modules.pop(name, None)


ALPHA = '''
@tool
def alpha(ctx: ToolContext, x: int) -> int:
    """Alpha."""
    return x
'''


def test_examples_is_the_shipped_module() -> None:
    registry = load_tools("examples")
    assert registry.names == ("get_current_time", "add_note", "list_notes")
    assert module_paths(" examples , realtime.tools.examples,") == ["realtime.tools.examples"]


def test_an_empty_value_offers_no_tools() -> None:
    assert len(load_tools("")) == 0
    assert len(load_tools(" , ")) == 0


def test_modules_are_gathered_in_order(tool_module: ModuleMaker) -> None:
    first = tool_module(ALPHA)
    second = tool_module("""
        @tool(name="beta", description="Beta.")
        async def b() -> str:
            return "b"
    """)
    registry = load_tools(f"{first}, {second},examples")
    assert registry.names[:2] == ("alpha", "beta")
    assert "get_current_time" in registry
    # Loading again (another config load, a test) gives the same tools, not duplicates.
    assert load_tools(f"{first},{second}").names == ("alpha", "beta")


def test_an_import_error_names_the_variable_and_the_path(tool_module: ModuleMaker) -> None:
    broken = tool_module("import no_such_module_anywhere\n")
    with pytest.raises(ToolsConfigError) as caught:
        load_tools(f"examples,{broken}")
    message = str(caught.value)
    assert message.startswith("RELAY_TOOLS: cannot import")
    assert broken in message and "no_such_module_anywhere" in message
    assert isinstance(caught.value, ConfigError)  # settings.py turns it into a clean exit


def test_a_missing_module_names_the_path() -> None:
    with pytest.raises(ToolsConfigError, match=r"RELAY_TOOLS: cannot import 'myapp\.nowhere'"):
        load_tools("myapp.nowhere")


@pytest.mark.parametrize("path", ["my-app.tools", "tools/mine", "a..b", "1st.module"])
def test_a_path_that_is_not_a_module_path_is_refused(path: str) -> None:
    with pytest.raises(ToolsConfigError, match=r"RELAY_TOOLS: .* is not a dotted module path"):
        load_tools(path)


def test_a_duplicate_tool_name_across_modules_names_both(tool_module: ModuleMaker) -> None:
    first, second = tool_module(ALPHA), tool_module(ALPHA)
    with pytest.raises(ToolsConfigError) as caught:
        load_tools(f"{first},{second}")
    message = str(caught.value)
    assert "RELAY_TOOLS" in message and "'alpha'" in message
    assert first in message and second in message


def test_a_duplicate_tool_name_within_a_module_is_an_import_error(
    tool_module: ModuleMaker,
) -> None:
    twice = tool_module(
        ALPHA
        + ALPHA.replace("def alpha", "def alpha_again").replace("@tool", '@tool(name="alpha")')
    )
    with pytest.raises(ToolsConfigError, match=rf"RELAY_TOOLS: cannot import '{twice}'.*already"):
        load_tools(twice)


def test_an_invalid_tool_name_names_the_module(tool_module: ModuleMaker) -> None:
    bad = tool_module("""
        @tool(name="get time", description="Spaces are not allowed.")
        def get_time() -> str:
            return ""
    """)
    with pytest.raises(ToolsConfigError) as caught:
        load_tools(bad)
    message = str(caught.value)
    assert message.startswith(f"RELAY_TOOLS: cannot import '{bad}'")
    assert "'get time' must match" in message


def test_a_module_without_tools_is_refused(tool_module: ModuleMaker) -> None:
    empty = tool_module("VALUE = 1\n")
    with pytest.raises(ToolsConfigError, match=f"RELAY_TOOLS: module '{empty}' defines no"):
        load_tools(empty)


def test_the_library_and_the_examples_load_before_django_is_set_up() -> None:
    """settings.py builds the configuration before Django's apps exist."""
    code = (
        "import django.apps, realtime.extensions.policy, realtime.extensions.client_messages\n"
        "from realtime.tools import load_tools\n"
        "assert not django.apps.apps.ready\n"
        "print(','.join(load_tools('examples').names))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "get_current_time,add_note,list_notes"
