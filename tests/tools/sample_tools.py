"""Tools for the session tests (RELAY_TOOLS=tests.tools.sample_tools): slow, failing, ORM."""

from __future__ import annotations

import asyncio

from realtime.tools import ToolContext, tool

STARTED: list[str] = []  # call ids of slow_lookup calls that began


@tool(timeout=0.3)
async def slow_lookup(ctx: ToolContext, seconds: float = 5.0) -> str:
    """Takes its time (longer than its own timeout unless told otherwise)."""
    STARTED.append(ctx.call_id)
    await asyncio.sleep(seconds)
    return "finally"


@tool
def broken_lookup() -> str:
    """Always fails."""
    raise RuntimeError("database password is hunter2")  # must never reach the model


@tool(show_result=True)
def whoami(ctx: ToolContext) -> str:
    """Who is signed in (sync: runs off the event loop)."""
    user = ctx.require_user("nobody is signed in")
    return f"user {user.get_username()} has {user.realtime_sessions.count()} session(s)"
