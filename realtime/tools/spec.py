"""A tool's definition: its function, its pydantic arguments model and its declarations.

The arguments model is built by pydantic from the function's type hints (``create_model``
over the signature) or is the function's single pydantic-model parameter; its JSON schema
is what the model sees, and the same model validates what the model sends.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, PydanticUserError, create_model
from pydantic.json_schema import GenerateJsonSchema

from realtime.tools.context import ToolContext

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_EXAMPLES = 10
EXAMPLE_MAX_CHARS = 100


class ToolDefinitionError(ValueError):
    """A function that cannot be a tool (bad name, missing type hints, …)."""


class _NoFieldTitles(GenerateJsonSchema):
    # Titles repeat the property names: tokens for the model, nothing it needs.
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    function: Callable[..., Any]
    arguments_model: type[BaseModel]
    context_parameter: str | None  # the parameter that receives the ToolContext
    model_parameter: str | None  # set when the function takes one pydantic model
    is_async: bool
    timeout: float | None  # None: the runner's default
    show_arguments: bool
    show_result: bool
    examples: tuple[str, ...] = ()  # what a user might say to call it

    def declared_description(self) -> str:
        """The description the model reads: the tool's own, then its example phrases on a
        line ``Examples: "…", "…"`` (a hint for a real model; the simulator calls the tool
        when the user's words contain one of them, see docs/simulator.md)."""
        if not self.examples:
            return self.description
        quoted = ", ".join(f'"{example}"' for example in self.examples)
        return f"{self.description}\nExamples: {quoted}"

    def parameters_schema(self) -> dict[str, Any]:
        schema = self.arguments_model.model_json_schema(schema_generator=_NoFieldTitles)
        schema.pop("title", None)
        schema.setdefault("properties", {})
        return schema

    def realtime_declaration(self) -> dict[str, Any]:
        """The Realtime API's function tool (``session.tools`` entry)."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.declared_description(),
            "parameters": self.parameters_schema(),
        }

    def live_declaration(self) -> dict[str, Any]:
        """GPT-Live's responses-delegation function tool (``responses.tools`` entry).

        ``strict`` is false: a strict schema must list every property as required, and
        optional arguments with defaults are the norm here. Arguments are validated by the
        relay in any case.
        """
        return {**self.realtime_declaration(), "strict": False}

    def parse_arguments(self, arguments: str | Mapping[str, Any]) -> BaseModel:
        """Validate the model's arguments (JSON text, as the APIs send them, or an already
        decoded object); raises pydantic ``ValidationError``. Empty text means none."""
        if isinstance(arguments, str):
            return self.arguments_model.model_validate_json(arguments.strip() or "{}")
        return self.arguments_model.model_validate(arguments)

    def call_kwargs(self, arguments: BaseModel, context: ToolContext) -> dict[str, Any]:
        if self.model_parameter is not None:
            kwargs: dict[str, Any] = {self.model_parameter: arguments}
        else:
            kwargs = {name: getattr(arguments, name) for name in type(arguments).model_fields}
        if self.context_parameter is not None:
            kwargs[self.context_parameter] = context
        return kwargs


def build_spec(
    function: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    show_arguments: bool = False,
    show_result: bool = False,
    examples: Sequence[str] = (),
) -> ToolSpec:
    tool_name = function.__name__ if name is None else name
    if not NAME_PATTERN.match(tool_name):
        raise ToolDefinitionError(
            f"tool name {tool_name!r} must match {NAME_PATTERN.pattern} "
            "(letters, digits, _ and -, at most 64)"
        )
    text = (description or inspect.getdoc(function) or "").strip()
    if not text:
        raise ToolDefinitionError(f"tool {tool_name!r} needs a description (or a docstring)")
    if timeout is not None and not timeout > 0:
        raise ToolDefinitionError(f"tool {tool_name!r}: timeout must be > 0, got {timeout!r}")
    phrases = _examples(examples, tool_name)
    context_parameter, model_parameter, model = _arguments_model(function, tool_name)
    return ToolSpec(
        name=tool_name,
        description=text,
        function=function,
        arguments_model=model,
        context_parameter=context_parameter,
        model_parameter=model_parameter,
        is_async=inspect.iscoroutinefunction(function),
        timeout=timeout,
        show_arguments=show_arguments,
        show_result=show_result,
        examples=phrases,
    )


def _examples(examples: Sequence[str], tool_name: str) -> tuple[str, ...]:
    if isinstance(examples, str):
        raise ToolDefinitionError(f"tool {tool_name!r}: examples must be a list of phrases")
    phrases = tuple(examples)
    if len(phrases) > MAX_EXAMPLES:
        raise ToolDefinitionError(f"tool {tool_name!r}: at most {MAX_EXAMPLES} examples")
    for phrase in phrases:
        if (
            not isinstance(phrase, str)
            or not phrase.strip()
            or len(phrase) > EXAMPLE_MAX_CHARS
            or '"' in phrase
            or "\n" in phrase
        ):
            raise ToolDefinitionError(
                f"tool {tool_name!r}: example {phrase!r} must be a phrase of 1 to "
                f"{EXAMPLE_MAX_CHARS} characters without double quotes or line breaks"
            )
    return tuple(phrase.strip() for phrase in phrases)


def _arguments_model(
    function: Callable[..., Any], tool_name: str
) -> tuple[str | None, str | None, type[BaseModel]]:
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot read type hints: {exc}") from exc
    context_parameter: str | None = None
    fields: dict[str, Any] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {tool_name!r}: *args/**kwargs are not supported")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: positional-only parameters are not supported"
            )
        if parameter.name not in hints:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: parameter {parameter.name!r} needs a type hint"
            )
        hint = hints[parameter.name]
        if hint is ToolContext:
            context_parameter = parameter.name
            continue
        default = ... if parameter.default is parameter.empty else parameter.default
        fields[parameter.name] = (hint, default)

    if len(fields) == 1:
        ((only, (hint, default)),) = fields.items()
        if inspect.isclass(hint) and issubclass(hint, BaseModel) and default is ...:
            return context_parameter, only, hint
    try:
        model = create_model(
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="forbid"),
            **fields,
        )
        model.model_json_schema()  # fail at import, not at the first call
    except (PydanticUserError, TypeError, ValueError, NameError) as exc:
        raise ToolDefinitionError(f"tool {tool_name!r}: {exc}") from exc
    return context_parameter, None, model
