"""Per-user session policy (``RELAY_SESSION_POLICY``): instructions, voice, tools and limits
decided per session from the user and the connection scope.

A policy is a callable ``(user, scope) -> SessionPolicy``, sync or async, named by a dotted
path. Every field of ``SessionPolicy`` left ``None`` keeps the configured default, so
``default_policy`` (all ``None``) is today's behaviour.

Phone calls (docs/phone.md) run the same policy with ``scope["relay_phone"]``: the provider,
the caller's and the called number (unmasked, for the policy only) and the call's id. A
policy that returns ``allow=False`` refuses the call: the caller hears ``refusal`` (or a
short default) and the call ends. For browser sessions ``allow=False`` refuses the
connection (``policy_refused``). ``keypad`` decides what the model hears of a caller's key
presses (``realtime/extensions/keypad.py``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, cast

from channels.db import database_sync_to_async
from django.utils.module_loading import import_string

from realtime.extensions.keypad import KeypadHook
from realtime.kernel.config import ConfigError

log = logging.getLogger("realtime.extensions.policy")

VARIABLE = "RELAY_SESSION_POLICY"

# The limits a policy may override: RelayConfig field names, with RelayConfig's bounds.
LIMIT_BOUNDS: dict[str, tuple[int, int]] = {
    "max_session_seconds": (0, 86_400),
    "idle_timeout_seconds": (0, 86_400),
    "max_messages_per_minute": (0, 10_000),
    "max_control_messages_per_minute": (0, 10_000),
}

# SessionPolicy fields of no RelayConfig
NOT_CONFIG = frozenset({"tools", "allow", "refusal", "keypad"})

PolicyFunction = Callable[[Any, Mapping[str, Any]], "SessionPolicy | Awaitable[SessionPolicy]"]


class PolicyConfigError(ConfigError):
    """``RELAY_SESSION_POLICY`` cannot be loaded; the message names the variable."""


class PolicyError(RuntimeError):
    """The policy failed for one session (it raised, or returned something else)."""


@dataclass(frozen=True)
class SessionPolicy:
    """What one session gets. ``None`` everywhere means "keep the configured default".

    ``tools``: the names of the registered tools this session may use (``None``: all of
    them; empty: none). Limits use ``RelayConfig``'s names and meaning (0 disables).
    ``keypad`` (phone calls): called with each key press (``KeyPress``), returns what the
    model hears of it, or ``None``; ``None`` here keeps the default note (``keypad.announce``).
    """

    instructions: str | None = None
    voice: str | None = None
    tools: Collection[str] | None = None  # stored as a frozenset
    max_session_seconds: int | None = None
    idle_timeout_seconds: int | None = None
    max_messages_per_minute: int | None = None
    max_control_messages_per_minute: int | None = None
    allow: bool = True  # False: this session (or call) is refused
    refusal: str | None = None  # what a refused caller hears (phone calls)
    keypad: KeypadHook | None = None  # what the model hears of a key press (phone calls)

    def __post_init__(self) -> None:
        for name in ("instructions", "voice"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"SessionPolicy.{name} must be a non-empty string or None")
        if self.tools is not None:
            if isinstance(self.tools, str) or not all(isinstance(t, str) for t in self.tools):
                raise ValueError("SessionPolicy.tools must be a collection of tool names or None")
            object.__setattr__(self, "tools", frozenset(self.tools))
        for name, (low, high) in LIMIT_BOUNDS.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"SessionPolicy.{name} must be an integer {low}..{high} or None")
        if self.keypad is not None and not callable(self.keypad):
            raise ValueError(
                "SessionPolicy.keypad must be a callable (KeyPress) -> str | None, or None"
            )

    def config_overrides(self) -> dict[str, Any]:
        """The ``RelayConfig`` fields this policy changes, for ``dataclasses.replace``."""
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if field.name not in NOT_CONFIG and getattr(self, field.name) is not None
        }

    def allowed_tools(self, registered: Iterable[str]) -> frozenset[str]:
        """The registered tool names this session may use; unknown names are ignored."""
        names = frozenset(registered)
        if self.tools is None:
            return names
        wanted = frozenset(self.tools)
        unknown = wanted - names
        if unknown:
            log.warning("session policy names unregistered tool(s): %s", ", ".join(sorted(unknown)))
        return wanted & names


def default_policy(user: Any, scope: Mapping[str, Any]) -> SessionPolicy:
    """Every session gets the configured defaults."""
    return SessionPolicy()


def load_policy(path: str | None) -> PolicyFunction:
    """The policy callable at this dotted path (empty: ``default_policy``)."""
    path = (path or "").strip()
    if not path:
        return default_policy
    try:
        policy = import_string(path)
    except ImportError as exc:
        raise PolicyConfigError(f"{VARIABLE}: cannot import {path!r}: {exc}") from exc
    except Exception as exc:
        raise PolicyConfigError(
            f"{VARIABLE}: importing {path!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(policy):
        raise PolicyConfigError(f"{VARIABLE}: {path!r} is not callable")
    return cast(PolicyFunction, policy)


async def resolve_policy(
    policy: PolicyFunction, user: Any, scope: Mapping[str, Any]
) -> SessionPolicy:
    """Run the policy for one session. A sync policy runs off the event loop (it may use the
    ORM). Raises ``PolicyError`` when the policy raises or returns something else."""
    try:
        if inspect.iscoroutinefunction(policy):
            result: Any = await policy(user, scope)
        else:
            result = await database_sync_to_async(policy)(user, scope)
            _honour_cancellation()
            if inspect.isawaitable(result):
                result = await result
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise PolicyError(f"session policy failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, SessionPolicy):
        raise PolicyError(f"session policy returned {type(result).__name__}, not SessionPolicy")
    return result


def _honour_cancellation() -> None:
    # asgiref can swallow a cancellation that arrives as the thread returns (see
    # registry.Presence._call).
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
