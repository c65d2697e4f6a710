"""Tool definitions: pydantic-generated schemas and both API families' declarations."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from openai.types.live.function_tool import FunctionTool
from openai.types.realtime.realtime_function_tool import RealtimeFunctionTool
from pydantic import BaseModel, Field

from realtime.tools import ToolContext, ToolDefinitionError, ToolRegistry, ToolRunner
from realtime_simulator.planning import example_phrases, tool_calls


class Booking(BaseModel):
    room: str = Field(description="Room name")
    people: int = Field(ge=1)


class Opaque:
    pass


def weather_registry() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool(description="The weather forecast for a city.")
    async def forecast(
        ctx: ToolContext,
        city: Annotated[str, Field(description="City name")],
        days: Annotated[int, Field(ge=1, le=7)] = 1,
        unit: Literal["celsius", "fahrenheit"] = "celsius",
    ) -> dict[str, str]:
        return {}

    @registry.tool
    def book_room(ctx: ToolContext, booking: Booking) -> str:
        """Book a meeting room."""
        return "ok"

    return registry


def test_the_schema_comes_from_the_type_hints_without_the_context() -> None:
    forecast = weather_registry().get("forecast")
    assert forecast is not None
    assert forecast.parameters_schema() == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "days": {"type": "integer", "minimum": 1, "maximum": 7, "default": 1},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
        },
        "required": ["city"],
        "additionalProperties": False,
    }
    assert forecast.context_parameter == "ctx"
    assert forecast.is_async


def test_a_single_pydantic_model_parameter_is_the_arguments_model() -> None:
    book = weather_registry().get("book_room")
    assert book is not None
    assert book.model_parameter == "booking"
    assert book.description == "Book a meeting room."
    schema = book.parameters_schema()
    assert schema["properties"] == {
        "room": {"type": "string", "description": "Room name"},
        "people": {"type": "integer", "minimum": 1},
    }
    assert schema["required"] == ["room", "people"]
    assert not book.is_async


def test_realtime_declarations_have_the_sdk_shape() -> None:
    declarations = weather_registry().realtime_tools()
    assert [d["name"] for d in declarations] == ["forecast", "book_room"]
    for declaration in declarations:
        assert set(declaration) == {"type", "name", "description", "parameters"}
        parsed = RealtimeFunctionTool.model_validate(declaration)
        assert parsed.type == "function"
        assert set(declaration) <= set(RealtimeFunctionTool.model_fields)


def test_live_declarations_have_the_sdk_shape_and_are_not_strict() -> None:
    declarations = weather_registry().live_tools()
    for declaration in declarations:
        assert set(declaration) <= set(FunctionTool.model_fields)
        parsed = FunctionTool.model_validate(declaration)
        assert parsed.strict is False
        assert parsed.parameters == declaration["parameters"]
    realtime = weather_registry().realtime_tools()
    assert [{k: v for k, v in d.items() if k != "strict"} for d in declarations] == realtime


def test_a_tool_without_parameters_has_an_empty_object_schema() -> None:
    registry = ToolRegistry()

    @registry.tool(description="Ping.")
    def ping() -> str:
        return "pong"

    assert registry.realtime_tools()[0]["parameters"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_example_phrases_follow_the_description_where_the_simulator_finds_them() -> None:
    registry = ToolRegistry()

    @registry.tool(examples=["what time is it", " what's the time? "])
    def clock() -> str:
        """The time."""
        return "noon"

    @registry.tool(description="Ping.")
    def ping() -> str:
        return "pong"

    clock_tool, ping_tool = registry.realtime_tools()
    examples = 'Examples: "what time is it", "what\'s the time?"'
    assert clock_tool["description"] == f"The time.\n{examples}"
    assert ping_tool["description"] == "Ping."  # no examples, no line
    assert registry.live_tools()[0]["description"] == clock_tool["description"]
    # The simulator reads them back from the declaration alone (it imports nothing of the relay).
    assert example_phrases(clock_tool) == ["what time is it", "what's the time?"]
    assert example_phrases(ping_tool) == []
    phrases = {"clock": example_phrases(clock_tool)}
    [call] = tool_calls("So, WHAT TIME is it?", ["clock", "ping"], "auto", phrases=phrases)
    assert call.name == "clock"


@pytest.mark.parametrize(
    ("examples", "error"),
    [
        ("what time is it", "a list of phrases"),
        (['say "cheese"'], "without double quotes"),
        (["one\ntwo"], "without double quotes or line breaks"),
        (["  "], "1 to 100 characters"),
        (["x" * 101], "1 to 100 characters"),
        ([f"phrase {n}" for n in range(11)], "at most 10 examples"),
    ],
)
def test_bad_examples_are_refused_at_definition(examples: object, error: str) -> None:
    with pytest.raises(ToolDefinitionError, match=error):
        ToolRegistry().tool(name="ping", description="Ping.", examples=examples)(  # type: ignore[arg-type]
            lambda: "pong"
        )


def test_only_keeps_the_named_tools() -> None:
    registry = weather_registry()
    assert registry.only(["book_room", "nope"]).names == ("book_room",)
    assert registry.only(None).names == registry.names
    assert len(registry.only([])) == 0


@pytest.mark.parametrize("name", ["", "has space", "dotted.name", "x" * 65, "ünï", "semi;colon"])
def test_invalid_names_are_refused(name: str) -> None:
    def function() -> None: ...

    with pytest.raises(ToolDefinitionError, match="must match"):
        ToolRegistry().tool(name=name, description="d")(function)


def test_names_at_the_limits_are_accepted() -> None:
    registry = ToolRegistry()

    def first() -> None: ...

    def second() -> None: ...

    registry.tool(name="a" * 64, description="d")(first)
    registry.tool(name="A-b_9", description="d")(second)
    assert registry.names == ("a" * 64, "A-b_9")


def test_a_duplicate_name_in_one_registry_is_refused() -> None:
    registry = ToolRegistry()

    @registry.tool(description="first")
    def same() -> None: ...

    with pytest.raises(ToolDefinitionError, match="already taken"):

        @registry.tool(name="same", description="second")
        def other() -> None: ...


def test_definition_errors_are_clear() -> None:
    registry = ToolRegistry()
    with pytest.raises(ToolDefinitionError, match="needs a type hint"):

        @registry.tool(description="d")
        def untyped(x) -> None: ...  # type: ignore[no-untyped-def]

    with pytest.raises(ToolDefinitionError, match="needs a description"):

        @registry.tool
        def undocumented(x: int) -> None: ...

    with pytest.raises(ToolDefinitionError, match=r"\*args"):

        @registry.tool(description="d")
        def star(*numbers: int) -> None: ...

    with pytest.raises(ToolDefinitionError, match="timeout"):

        @registry.tool(description="d", timeout=0)
        def hurried() -> None: ...

    with pytest.raises(ToolDefinitionError, match="Opaque"):

        @registry.tool(description="d")
        def opaque(thing: Opaque) -> None: ...

    assert len(registry) == 0


def test_the_decorator_returns_the_function_unchanged() -> None:
    registry = ToolRegistry()

    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    assert registry.tool(add) is add
    assert add(2, 3) == 5


async def test_the_context_may_be_a_keyword_only_parameter_of_any_name() -> None:
    registry = ToolRegistry()

    @registry.tool(description="Greets.")
    async def greet(name: str, *, session: ToolContext) -> str:
        return f"hello {name} from {session.session_id}"

    spec = registry.get("greet")
    assert spec is not None and spec.context_parameter == "session"
    assert list(spec.parameters_schema()["properties"]) == ["name"]
    runner = ToolRunner(registry, session_id="s-1")
    assert await runner.run("c", "greet", '{"name": "ann"}') == "hello ann from s-1"
