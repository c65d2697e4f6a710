"""Fidelity oracle: validate wire events against the installed openai SDK's pydantic models.

Validation is strict: the event's class is looked up by its ``type`` in the SDK's
discriminated union, validated with ``model_validate(..., strict=True)``, and every nested
model is checked for fields the SDK does not declare (the SDK models allow extras, so that
check is done here). A few fields the real service sends but the SDK does not model are
allowed explicitly (see ``ALLOWED_EXTRAS``).

Dialects: "ga" and "beta" (Realtime) and "live" (GPT-Live, ``openai.types.live``). A Live
``response.event`` wraps a Responses streaming event in an untyped ``event`` dict; that
nested event is validated the same way against ``openai.types.responses``'
``ResponseStreamEvent`` union.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

import pydantic
from openai.types import responses
from openai.types.beta.realtime import realtime_client_event as beta_client
from openai.types.beta.realtime import realtime_server_event as beta_server
from openai.types.beta.realtime.session import Session as BetaSession
from openai.types.live import client_event as live_client
from openai.types.live import server_event as live_server
from openai.types.realtime import realtime_client_event as ga_client
from openai.types.realtime import realtime_server_event as ga_server
from openai.types.realtime.realtime_session_create_request import RealtimeSessionCreateRequest

# Sent by the real service (see the recorded session.created), absent from the SDK models.
# GPT-Live needs none: every field the simulator sends is declared by openai.types.live.
ALLOWED_EXTRAS: dict[type[pydantic.BaseModel], set[str]] = {
    RealtimeSessionCreateRequest: {"id", "object", "expires_at"},
    BetaSession: {"object", "expires_at"},
}
DIALECTS = ("ga", "beta", "live")

_UNIONS = {
    ("server", "ga"): ga_server.RealtimeServerEvent,
    ("server", "beta"): beta_server.RealtimeServerEvent,
    ("client", "ga"): ga_client.RealtimeClientEvent,
    ("client", "beta"): beta_client.RealtimeClientEvent,
    ("server", "live"): live_server.ServerEvent,
    ("client", "live"): live_client.ClientEvent,
    ("nested", "responses"): responses.ResponseStreamEvent,
}


class OracleError(AssertionError):
    pass


def _members(union: Any) -> list[type[pydantic.BaseModel]]:
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    return [m for m in typing.get_args(union) if isinstance(m, type)]


@cache
def event_classes(direction: str, dialect: str) -> dict[str, type[pydantic.BaseModel]]:
    """Map of event ``type`` -> SDK model class for one union."""
    result: dict[str, type[pydantic.BaseModel]] = {}
    for member in _members(_UNIONS[(direction, dialect)]):
        annotation = member.model_fields["type"].annotation
        for literal in typing.get_args(annotation):
            result[literal] = member
    return result


def _check_extras(value: Any, path: str) -> None:
    if isinstance(value, pydantic.BaseModel):
        extra = set(value.model_extra or {})
        allowed = ALLOWED_EXTRAS.get(type(value), set())
        unexpected = extra - allowed
        if unexpected:
            raise OracleError(f"{path}: fields not in {type(value).__name__}: {sorted(unexpected)}")
        for name in type(value).model_fields:
            _check_extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for index, element in enumerate(value):
            _check_extras(element, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, element in value.items():
            _check_extras(element, f"{path}.{key}")


def _validate(direction: str, event: dict[str, Any], dialect: str) -> pydantic.BaseModel:
    if (direction, dialect) not in _UNIONS:
        raise ValueError(f"dialect must be one of {DIALECTS}, not {dialect!r}")
    if not isinstance(event, dict):
        raise OracleError(f"{direction} event is not an object: {event!r}")
    classes = event_classes(direction, dialect)
    type_ = event.get("type")
    cls = classes.get(type_)  # type: ignore[arg-type]
    if cls is None:
        raise OracleError(f"{dialect} {direction} union has no event type {type_!r}")
    try:
        model = cls.model_validate(event, strict=True)
    except pydantic.ValidationError as exc:
        raise OracleError(f"{dialect} {type_} does not validate: {exc}\n{event!r}") from exc
    _check_extras(model, type_)  # type: ignore[arg-type]
    if dialect == "live" and type_ == "response.event":
        _validate("nested", event["event"], "responses")
    return model


def validate_server_event(event: dict[str, Any], dialect: str) -> pydantic.BaseModel:
    """Validate one server event (a parsed JSON dict) for dialect "ga", "beta" or "live"."""
    return _validate("server", event, dialect)


def validate_client_event(event: dict[str, Any], dialect: str) -> pydantic.BaseModel:
    """Validate one client event (a parsed JSON dict) for dialect "ga", "beta" or "live"."""
    return _validate("client", event, dialect)
