"""Registries of tools, and the ``@tool`` decorator that fills them.

``@tool`` registers into the registry of the module that defines the function; importing a
module therefore registers its tools, and ``load_tools`` gathers the registries of the
modules named in ``RELAY_TOOLS``. A registry of one's own (tests, one-off setups) has the
same decorator as a method: ``registry.tool(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, overload

from realtime.tools.spec import ToolDefinitionError, ToolSpec, build_spec

F = TypeVar("F", bound=Callable[..., Any])


class ToolRegistry:
    def __init__(self, specs: Iterable[ToolSpec] = ()) -> None:
        self._specs: dict[str, ToolSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ToolSpec) -> None:
        existing = self._specs.get(spec.name)
        if existing is not None and not _same_definition(existing, spec):
            raise ToolDefinitionError(
                f"tool name {spec.name!r} is already taken by {_where(existing)}"
            )
        # The same function again (a module reloaded) replaces its earlier definition.
        self._specs[spec.name] = spec

    @overload
    def tool(self, function: F, /) -> F: ...

    @overload
    def tool(
        self,
        function: None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        show_arguments: bool = False,
        show_result: bool = False,
        examples: Sequence[str] = (),
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        function: F | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
        show_arguments: bool = False,
        show_result: bool = False,
        examples: Sequence[str] = (),
    ) -> F | Callable[[F], F]:
        """Register a function as a tool; the function itself is returned unchanged."""

        def register(func: F) -> F:
            self.add(
                build_spec(
                    func,
                    name=name,
                    description=description,
                    timeout=timeout,
                    show_arguments=show_arguments,
                    show_result=show_result,
                    examples=examples,
                )
            )
            return func

        return register(function) if function is not None else register

    def get(self, name: str) -> ToolSpec | None:
        return self._specs.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def only(self, names: Iterable[str] | None) -> ToolRegistry:
        """The tools of these names (None: all of them), e.g. a session policy's subset."""
        if names is None:
            return ToolRegistry(self._specs.values())
        wanted = set(names)
        return ToolRegistry(spec for spec in self._specs.values() if spec.name in wanted)

    def realtime_tools(self) -> list[dict[str, Any]]:
        """``session.tools`` for the Realtime API (OpenAI and Azure, both dialects)."""
        return [spec.realtime_declaration() for spec in self._specs.values()]

    def live_tools(self) -> list[dict[str, Any]]:
        """Function tools for GPT-Live's responses delegation."""
        return [spec.live_declaration() for spec in self._specs.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"ToolRegistry({', '.join(self._specs)})"


def _same_definition(a: ToolSpec, b: ToolSpec) -> bool:
    return _where(a) == _where(b)


def _where(spec: ToolSpec) -> str:
    function = spec.function
    return f"{function.__module__}.{function.__qualname__}"


_module_registries: dict[str, ToolRegistry] = {}


def module_registry(module: str) -> ToolRegistry:
    """The tools that ``@tool`` registered while this module was imported."""
    return _module_registries.setdefault(module, ToolRegistry())


@overload
def tool(function: F, /) -> F: ...


@overload
def tool(
    function: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    show_arguments: bool = False,
    show_result: bool = False,
    examples: Sequence[str] = (),
) -> Callable[[F], F]: ...


def tool(
    function: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    show_arguments: bool = False,
    show_result: bool = False,
    examples: Sequence[str] = (),
) -> F | Callable[[F], F]:
    """Make a function a tool of its module (see the module docstring).

    ``name`` defaults to the function's name, ``description`` to its docstring; ``timeout``
    (seconds) overrides the runner's default; ``show_arguments``/``show_result`` allow the
    client to see them in its ``tool_call`` notices (off: they may be personal data);
    ``examples`` are phrases a user might say to call it, published after the description
    (the simulator calls the tool when the user's words contain one).
    """

    def register(func: F) -> F:
        return module_registry(func.__module__).tool(
            name=name,
            description=description,
            timeout=timeout,
            show_arguments=show_arguments,
            show_result=show_result,
            examples=examples,
        )(func)

    return register(function) if function is not None else register
