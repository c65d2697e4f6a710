"""What a tool receives besides its arguments, and how it says no."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any


def _anonymous() -> Any:
    # Imported on use: this module may be imported before Django's apps are loaded.
    from django.contrib.auth.models import AnonymousUser

    return AnonymousUser()


MAX_KEYS = 64  # the keypad keeps a call's most recent key presses


@dataclass(frozen=True)
class PhoneCall:
    """A phone call as its tools see it (``ToolContext.phone``; docs/phone.md). The numbers
    are as the relay's logs show them: masked (``+4477*****123``) unless
    ``RELAY_PHONE_SHOW_NUMBERS`` is on."""

    provider: str  # "twilio"
    call_sid: str  # the provider's id of the call
    caller: str
    called: str


class Keypad:
    """The keys a phone caller pressed in this call, in order (``0``-``9``, ``*``, ``#``,
    ``A``-``D``): the phone edge adds each one; a tool call sees them as they were when it
    started (``ToolContext.keypad``). Bounded: the most recent ``MAX_KEYS``."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys = ""

    def press(self, key: str) -> str:
        """Add one key press; every key so far."""
        self.keys = (self.keys + key)[-MAX_KEYS:]
        return self.keys


class ToolRefused(Exception):
    """Raised by a tool to refuse a call (e.g. a permission check). The message is for the
    model to speak, so write it for the user: "You need to be signed in to keep notes."."""

    def __init__(self, message: str = "You are not allowed to do that.") -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ToolContext:
    """One call's view of its session. Built by ``ToolRunner``; a tool never builds one.

    ``user`` is the session's Django user or an ``AnonymousUser``: a tool acts with exactly
    that user's rights. ``cancelled`` is set when the call is abandoned (timeout, barge-in,
    close); a long synchronous tool may poll it, since a thread cannot be stopped from outside.
    ``phone`` is the call (``None`` in a browser session) and ``keypad`` the keys its caller
    pressed so far, in order (``""`` in a browser session): whatever the model was told of them
    (the session policy's ``keypad``, docs/phone.md), a tool sees them all.
    """

    user: Any = field(default_factory=_anonymous)
    session_id: str = ""
    config: Any = None  # the relay's RelayConfig (typed Any until the session core settles)
    call_id: str = ""
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.getLogger("realtime.tools")
    )
    cancelled: threading.Event = field(default_factory=threading.Event)
    phone: PhoneCall | None = None
    keypad: str = ""

    @property
    def is_authenticated(self) -> bool:
        return bool(getattr(self.user, "is_authenticated", False))

    def require_user(self, message: str = "You need to be signed in for that.") -> Any:
        """The signed-in user, or ``ToolRefused`` for an anonymous session."""
        if not self.is_authenticated:
            raise ToolRefused(message)
        return self.user
