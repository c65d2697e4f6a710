"""A PIN check for the keypad tests (RELAY_TOOLS=tests.phone.keypad_tools).

On the simulator a tool is called when the caller's words hold one of its example phrases
(docs/simulator.md); the only spoken fixture that names a tool says "What time is it, use get
current time." (tests/fixtures/what_time_24k.wav), so this tool lists that phrase."""

from __future__ import annotations

from realtime.tools import PhoneCall, ToolContext, tool

PIN = "2580"
SEEN: list[tuple[str, PhoneCall | None]] = []  # (keypad, phone) of every call, in order


@tool(examples=["what time is it"])
def verify_pin(ctx: ToolContext) -> dict[str, bool]:
    """Checks the PIN the caller typed on the phone keypad (ended with #)."""
    SEEN.append((ctx.keypad, ctx.phone))
    entry = ctx.keypad.rpartition("#")[0].rpartition("#")[2]  # the last entry ended by #
    return {"verified": entry == PIN}
