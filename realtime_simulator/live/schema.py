"""Strict checking of client JSON against the installed SDK's GPT-Live models.

The service rejects unknown fields in the session configuration (per Microsoft's GPT-Live
event reference, the configuration object is strict). The SDK's pydantic
models are the contract, so the walker below derives the allowed keys, required keys, literal
values and JSON types from them instead of a hand-kept copy. The first problem found is
raised as a ``LiveError`` with the dotted ``param`` path (``session.audio.format.rate``).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import pydantic

_NONE = type(None)
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


class LiveError(Exception):
    """A client command the service would answer with an ``error`` event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


def unknown(param: str) -> LiveError:
    return LiveError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def missing(param: str) -> LiveError:
    return LiveError("missing_required_parameter", f"Missing required parameter: '{param}'.", param)


def invalid(param: str, message: str) -> LiveError:
    return LiveError("invalid_value", message, param)


def _json_kind(value: Any) -> str:
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "an integer")):
        if isinstance(value, kind):
            return name
    if isinstance(value, float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else "an unknown value"


def _wrong_type(param: str, expected: str, value: Any) -> LiveError:
    return LiveError(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {_json_kind(value)} instead.",
        param,
    )


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)


def _discriminator(metadata: tuple[Any, ...]) -> str | None:
    for item in metadata:
        name = getattr(item, "discriminator", None)
        if isinstance(name, str):
            return name
    return None


def _literals(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()


def _unwrap(field: Any) -> Any:
    """A field's annotation without Optional[...] (discriminators may be optional)."""
    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not _NONE]
        return inner[0] if len(inner) == 1 else annotation
    return annotation


def check(value: Any, annotation: Any, param: str, discriminator: str | None = None) -> None:
    """Raise LiveError if ``value`` (parsed JSON) does not fit ``annotation`` exactly."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *metadata = typing.get_args(annotation)
        check(value, inner, param, _discriminator(tuple(metadata)) or discriminator)
    elif origin in (typing.Union, types.UnionType):
        _check_union(value, typing.get_args(annotation), param, discriminator)
    elif origin is typing.Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed or not any(type(value) is type(v) for v in allowed):
            supported = ", ".join(repr(v) for v in allowed)
            raise invalid(param, f"Invalid value: {value!r}. Supported values are: {supported}.")
    elif origin is list:
        if not isinstance(value, list):
            raise _wrong_type(param, "an array", value)
        (element,) = typing.get_args(annotation)
        for index, item in enumerate(value):
            check(item, element, f"{param}[{index}]")
    elif origin is dict:
        if not isinstance(value, dict):
            raise _wrong_type(param, "an object", value)
        element = typing.get_args(annotation)[1]
        for key, item in value.items():
            check(item, element, _join(param, key))
    elif _is_model(annotation):
        check_model(value, annotation, param)
    elif annotation in (object, Any):
        return
    elif annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _wrong_type(param, "a number", value)
    elif annotation in _TYPE_NAMES:
        if isinstance(value, bool) != (annotation is bool) or not isinstance(value, annotation):
            raise _wrong_type(param, _TYPE_NAMES[annotation], value)
    elif annotation is _NONE:
        if value is not None:
            raise _wrong_type(param, "null", value)
    else:  # pragma: no cover - a model shape this walker does not know yet
        raise TypeError(f"cannot check {param} against {annotation!r}")


def check_model(value: Any, model: type[pydantic.BaseModel], param: str) -> None:
    """Check a JSON object against a model; ``param`` "" for a whole client event."""
    if not isinstance(value, dict):
        raise _wrong_type(param, "an object", value)
    fields = {(f.alias or name): f for name, f in model.model_fields.items()}
    for key in value:
        if key not in fields:
            raise unknown(_join(param, key))
    for key, field in fields.items():
        if key not in value:
            if field.is_required():
                raise missing(_join(param, key))
            continue
        # pydantic moves Annotated[..., PropertyInfo(discriminator=...)] into field.metadata
        disc = _discriminator(tuple(field.metadata))
        check(value[key], field.annotation, _join(param, key), disc)


def _join(param: str, key: str) -> str:
    return f"{param}.{key}" if param else key


def _check_union(value: Any, members: tuple[Any, ...], param: str, disc: str | None) -> None:
    if value is None and _NONE in members:
        return
    members = tuple(m for m in members if m is not _NONE)
    if disc is not None and isinstance(value, dict):
        models = [m for m in members if _is_model(m)]
        if disc in value:
            members = tuple(
                m for m in models if value[disc] in _literals(_unwrap(m.model_fields[disc]))
            )
            if not members:
                allowed = [v for m in models for v in _literals(_unwrap(m.model_fields[disc]))]
                raise invalid(
                    _join(param, disc),
                    f"Invalid value: {value[disc]!r}. Supported values are: "
                    + ", ".join(repr(v) for v in dict.fromkeys(allowed)) + ".",
                )  # fmt: skip
        else:
            members = tuple(m for m in models if not m.model_fields[disc].is_required())
            if not members:
                raise missing(_join(param, disc))
    errors: list[LiveError] = []
    for member in members:
        try:
            check(value, member, param)
            return
        except LiveError as exc:
            errors.append(exc)
    # Report why the member of the value's own JSON kind rejected it; among objects, the
    # model that knows most of the value's keys.
    same = [(m, e) for m, e in zip(members, errors, strict=True) if _same_kind(value, m)]
    if same:
        raise max(same, key=lambda pair: _known_keys(value, pair[0]))[1]
    expected = " or ".join(dict.fromkeys(_kind_name(m) for m in members))
    raise _wrong_type(param, expected, value)


def _known_keys(value: Any, annotation: Any) -> int:
    if not (isinstance(value, dict) and _is_model(annotation)):
        return 0
    fields = {(f.alias or name) for name, f in annotation.model_fields.items()}
    return len(fields.intersection(value))


def _same_kind(value: Any, annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _same_kind(value, typing.get_args(annotation)[0])
    if _is_model(annotation) or origin is dict:
        return isinstance(value, dict)
    if origin is list:
        return isinstance(value, list)
    if origin is typing.Literal:
        return any(type(value) is type(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return any(_same_kind(value, m) for m in typing.get_args(annotation))
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(annotation, type) and type(value) is annotation


def _kind_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kind_name(typing.get_args(annotation)[0])
    if _is_model(annotation) or origin is dict:
        return "an object"
    if origin is list:
        return "an array"
    if origin is typing.Literal:
        return _TYPE_NAMES.get(type(typing.get_args(annotation)[0]), "a value")
    return _TYPE_NAMES.get(annotation, "a value")
