"""Server-side tools: Python functions the voice model can call, run in the relay with the
session user's rights. See docs/tools.md.

Importing this package does not need Django's apps to be loaded; a tool module that imports
models at its top does, so ``load_tools`` belongs after ``django.setup()``.
"""

from realtime.tools.context import Keypad, PhoneCall, ToolContext, ToolRefused
from realtime.tools.loader import ToolsConfigError, load_tools
from realtime.tools.outcomes import ToolCall, ToolNotice, ToolStats
from realtime.tools.registry import ToolRegistry, tool
from realtime.tools.runner import DEFAULT_TIMEOUT_SECONDS, ToolRunner
from realtime.tools.spec import ToolDefinitionError, ToolSpec

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "Keypad",
    "PhoneCall",
    "ToolCall",
    "ToolContext",
    "ToolDefinitionError",
    "ToolNotice",
    "ToolRefused",
    "ToolRegistry",
    "ToolRunner",
    "ToolSpec",
    "ToolStats",
    "ToolsConfigError",
    "load_tools",
    "tool",
]
