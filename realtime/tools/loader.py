"""``RELAY_TOOLS``: which modules' tools this relay offers."""

from __future__ import annotations

import importlib
import re

from realtime.kernel.config import ConfigError
from realtime.tools.registry import ToolRegistry, module_registry

VARIABLE = "RELAY_TOOLS"
EXAMPLES = "examples"
EXAMPLES_MODULE = "realtime.tools.examples"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class ToolsConfigError(ConfigError):
    """A ``RELAY_TOOLS`` entry that cannot be loaded; the message names the variable."""


def module_paths(spec: str) -> list[str]:
    """The dotted module paths of a ``RELAY_TOOLS`` value, in order, without repeats."""
    paths: list[str] = []
    for item in spec.split(","):
        path = item.strip()
        if path == EXAMPLES:
            path = EXAMPLES_MODULE
        if path and path not in paths:
            paths.append(path)
    return paths


def load_tools(spec: str) -> ToolRegistry:
    """Import the modules of a ``RELAY_TOOLS`` value and gather their tools.

    An empty value gives an empty registry (no tools offered). Raises ``ToolsConfigError``
    naming ``RELAY_TOOLS`` and the module for a path that is not a module path, does not
    import (including a tool that cannot be defined), defines no tools, or defines a tool
    name another listed module defines too.
    """
    registry = ToolRegistry()
    owner: dict[str, str] = {}
    for path in module_paths(spec):
        if not _DOTTED.match(path):
            raise ToolsConfigError(f"{VARIABLE}: {path!r} is not a dotted module path")
        try:
            importlib.import_module(path)
        except Exception as exc:
            raise ToolsConfigError(
                f"{VARIABLE}: cannot import {path!r}: {type(exc).__name__}: {exc}"
            ) from exc
        tools = module_registry(path)
        if not len(tools):
            raise ToolsConfigError(f"{VARIABLE}: module {path!r} defines no @tool functions")
        for spec_ in tools:
            if spec_.name in owner:
                raise ToolsConfigError(
                    f"{VARIABLE}: tool name {spec_.name!r} is defined by both "
                    f"{owner[spec_.name]!r} and {path!r}"
                )
            owner[spec_.name] = path
            registry.add(spec_)
    return registry
