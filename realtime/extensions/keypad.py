"""Keypad (DTMF) key presses on a phone call: what the model and the record get of each.

By default each key reaches the model as a system note, "The caller pressed 5 on the keypad."
(``announce``), and the conversation record as the same ``system_message`` entry. The session
policy may decide otherwise per call (``SessionPolicy(keypad=…)``, docs/phone.md "Keypad"): a
callable given a ``KeyPress`` that returns the note (a string, at most 4,000 characters kept),
or ``None`` for nothing at all.
``private`` tells the model that a key was pressed, never which: for PINs, which tools read
from ``ToolContext.keypad`` (every key, whatever the model was told).

The hook runs on the event loop, once per key press, in order: keep it quick (no database;
an async hook is awaited, for at most ``HOOK_TIMEOUT_S``). A hook that raises, times out or
returns something else never ends the call: it is logged and the key is noted as ``private``
does (the digit is withheld: a hook that failed may have been guarding a secret).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from realtime.kernel import text as textrules

log = logging.getLogger("realtime.extensions.keypad")

HOOK_TIMEOUT_S = 2.0
MAX_NOTE_CHARS = 4000  # as a client's system_message


@dataclass(frozen=True)
class KeyPress:
    """One key press on a call, as the session policy's ``keypad`` hook receives it."""

    digit: str  # the key: "0"-"9", "*", "#" or "A"-"D"
    digits: str  # every key pressed in this call so far, this one last (the most recent 64)
    call: Mapping[str, str]  # scope["relay_phone"]: provider, call_sid, caller, called (whole)


KeypadHook: TypeAlias = Callable[[KeyPress], "str | Awaitable[str | None] | None"]


def announce(press: KeyPress) -> str:
    """The default: the model hears which key."""
    return f"The caller pressed {press.digit} on the keypad."


def private(press: KeyPress) -> str:
    """The model hears that a key was pressed, not which (the digits stay with the tools)."""
    return "The caller pressed a key on the keypad."


async def note_for(hook: KeypadHook | None, press: KeyPress, *, session_id: Any) -> str | None:
    """What the model and the record get of this key press (None: nothing)."""
    if hook is None:
        return announce(press)
    try:
        result: Any = hook(press)
        if inspect.isawaitable(result):
            async with asyncio.timeout(HOOK_TIMEOUT_S):
                result = await result
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(
            "session %s: the session policy's keypad hook failed; the key is noted, its digit "
            "withheld",
            session_id,
        )
        return private(press)
    if result is None:
        return None
    if isinstance(result, str):  # the deployment's text: bounded, valid for every sink
        return textrules.clean(result.strip()[:MAX_NOTE_CHARS]) or None
    log.error(
        "session %s: the session policy's keypad hook returned %s, not a string or None; the "
        "key is noted, its digit withheld",
        session_id,
        type(result).__name__,
    )
    return private(press)
