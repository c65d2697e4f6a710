"""Extension messages from the client (``RELAY_CLIENT_MESSAGES``): allow-listed, validated.

Off by default. Each message type has a pydantic payload model and a handler that turns a
valid payload into a neutral command (what the session should do), never a raw upstream
event: the session core decides how a command reaches the upstream. Shipped:
``{"type":"system_message","text":"…"}`` → ``AddSystemMessage(text)``.

Adding one's own (a module the deployment names in ``RELAY_CLIENT_MESSAGES``)::

    class SetTopic(BaseModel):
        topic: str = Field(min_length=1, max_length=80)

    @client_message("set_topic", payload=SetTopic)
    def set_topic(payload: SetTopic) -> AddSystemMessage:
        return AddSystemMessage(f"The conversation topic is now: {payload.topic}")

    RELAY_CLIENT_MESSAGES=system_message,myapp.client_messages:set_topic
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, StrictStr, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from realtime.kernel.commands import ClientProtocolError
from realtime.kernel.config import ConfigError
from realtime.tools.outcomes import describe_validation_error

VARIABLE = "RELAY_CLIENT_MESSAGES"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# The canonical client messages (realtime.kernel.commands) cannot be redefined.
RESERVED = frozenset({"user_message", "playback", "interrupt", "commit"})
DEFAULT_MAX_TEXT_CHARS = 4000

Command = object  # a neutral description of what the session should do
H = TypeVar("H", bound=Callable[[Any], Command])


class ClientMessagesConfigError(ConfigError):
    """``RELAY_CLIENT_MESSAGES`` names something that cannot be enabled."""


class ClientMessageError(ClientProtocolError):
    """An enabled message with an invalid payload: reported like any bad client message
    (``missing_field`` or ``invalid_field``, non-fatal)."""


@dataclass(frozen=True)
class MessageLimits:
    """Passed to payload validation as the pydantic validation context."""

    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS


def limits_of(info: ValidationInfo) -> MessageLimits:
    """The limits a payload validator should enforce (defaults outside ``parse``)."""
    context = info.context if isinstance(info.context, dict) else {}
    limits = context.get("limits")
    return limits if isinstance(limits, MessageLimits) else MessageLimits()


@dataclass(frozen=True)
class MessageType:
    name: str
    payload: type[BaseModel]
    handler: Callable[[Any], Command]


class ClientMessageRegistry:
    def __init__(self) -> None:
        self._types: dict[str, MessageType] = {}

    def message(self, name: str, *, payload: type[BaseModel]) -> Callable[[H], H]:
        """Register a handler for client messages of type ``name``; see the module docstring."""
        if not NAME_PATTERN.match(name):
            raise ValueError(f"client message type {name!r} must match {NAME_PATTERN.pattern}")
        if name in RESERVED:
            raise ValueError(f"client message type {name!r} is part of the canonical protocol")

        def register(handler: H) -> H:
            existing = self._types.get(name)
            if existing is not None and _where(existing.handler) != _where(handler):
                raise ValueError(
                    f"client message type {name!r} is already handled by {_where(existing.handler)}"
                )
            self._types[name] = MessageType(name=name, payload=payload, handler=handler)
            return handler

        return register

    def get(self, name: str) -> MessageType | None:
        return self._types.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._types)


def _where(handler: Callable[..., Any]) -> str:
    return f"{handler.__module__}.{handler.__qualname__}"


class ClientMessages:
    """The extension messages one deployment accepts."""

    def __init__(self, types: Iterable[MessageType] = (), limits: MessageLimits | None = None):
        self._types = {message_type.name: message_type for message_type in types}
        self.limits = limits or MessageLimits()

    @property
    def enabled(self) -> tuple[str, ...]:
        return tuple(self._types)

    def parse(self, kind: str, message: Mapping[str, Any]) -> Command | None:
        """The command for this message, or None when ``kind`` is not enabled (the caller
        then reports ``unknown_type``). Raises ``ClientMessageError`` for a bad payload."""
        message_type = self._types.get(kind)
        if message_type is None:
            return None
        fields = {key: value for key, value in message.items() if key != "type"}
        try:
            payload = message_type.payload.model_validate(fields, context={"limits": self.limits})
        except ValidationError as exc:
            missing = all(error["type"] == "missing" for error in exc.errors())
            raise ClientMessageError(
                "missing_field" if missing else "invalid_field",
                f"{kind}: {describe_validation_error(exc)}",
            ) from None
        return message_type.handler(payload)


def load_client_messages(
    spec: str,
    *,
    limits: MessageLimits | None = None,
    registry: ClientMessageRegistry | None = None,
) -> ClientMessages:
    """Enable the message types of a ``RELAY_CLIENT_MESSAGES`` value (empty: none).

    Each entry is a registered name (``system_message``) or ``module.path:name``, which
    imports the module (registering its types) first.
    """
    registry = registry or client_messages
    enabled: list[MessageType] = []
    for entry in (item.strip() for item in spec.split(",")):
        if not entry:
            continue
        module, _, name = entry.rpartition(":")
        if module:
            try:
                importlib.import_module(module)
            except Exception as exc:
                raise ClientMessagesConfigError(
                    f"{VARIABLE}: cannot import {module!r}: {type(exc).__name__}: {exc}"
                ) from exc
        message_type = registry.get(name)
        if message_type is None:
            known = ", ".join(registry.names) or "none"
            raise ClientMessagesConfigError(
                f"{VARIABLE}: no client message type {name!r} is registered (known: {known})"
            )
        if message_type not in enabled:
            enabled.append(message_type)
    return ClientMessages(enabled, limits)


client_messages = ClientMessageRegistry()
client_message = client_messages.message


# ---------------------------------------------------------------------------------------------
# Shipped: system_message
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddSystemMessage:
    """Add a system message to the conversation (no response is requested)."""

    text: str


class SystemMessagePayload(BaseModel):
    text: StrictStr

    @field_validator("text")
    @classmethod
    def _within_limits(cls, text: str, info: ValidationInfo) -> str:
        if not text.strip():
            raise PydanticCustomError("text_empty", "must not be empty")
        limit = limits_of(info).max_text_chars
        if len(text) > limit:
            raise PydanticCustomError(
                "text_too_long", "must be at most {limit} characters", {"limit": limit}
            )
        return text


@client_message("system_message", payload=SystemMessagePayload)
def system_message(payload: SystemMessagePayload) -> AddSystemMessage:
    return AddSystemMessage(payload.text)
