"""The layers of docs/architecture.md hold: import-linter's contracts (pyproject.toml,
``[tool.importlinter]``) are kept, they name every package of ``realtime/``, and no module
imports itself through others (imports made only for type checking aside)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
PACKAGES = SETTINGS["root_packages"]


def contract(contract_id: str) -> dict:
    (found,) = [c for c in SETTINGS["contracts"] if c["id"] == contract_id]
    return found


def test_lint_imports_keeps_every_contract() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"lint-imports failed:\n{result.stdout}\n{result.stderr}"
    assert "0 broken" in result.stdout


def relay_parts() -> set[str]:
    """Every package and module directly inside realtime/ (``realtime.edge``, …)."""
    graph = grimp.build_graph("realtime", cache_dir=None)
    return graph.find_children("realtime")


@pytest.mark.parametrize(
    ("contract_id", "field", "left_out"),
    [
        ("kernel", "forbidden_modules", {"realtime.kernel"}),
        ("loadtools", "forbidden_modules", {"realtime.kernel"}),
        ("edge", "source_modules", {"realtime.edge"}),
    ],
)
def test_the_contracts_name_every_package_of_the_relay(
    contract_id: str, field: str, left_out: set[str]
) -> None:
    """A package added to realtime/ later is covered too: these lists are the whole relay."""
    named = {m for m in contract(contract_id)[field] if m.startswith("realtime.")}
    assert named == relay_parts() - left_out


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = low[other] = len(index)
                    stack.append(other)
                    on_stack.add(other)
                    work.append(
                        (other, iter(sorted(graph.find_modules_directly_imported_by(other))))
                    )
                    break
                if other in on_stack:
                    low[module] = min(low[module], index[other])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles (break them, or import under TYPE_CHECKING):\n" + "\n".join(
        " ⇄ ".join(cycle) for cycle in cycles
    )


def test_the_cycle_check_finds_a_cycle_and_only_cycles() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")]:
        graph.add_import(importer=importer, imported=imported)
    graph.add_import(importer="p.e", imported="p.d")
    assert import_cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_no_module_is_named_like_a_dependency() -> None:
    """A module named like a library (the old ``realtime/limits.py`` beside ``limits``,
    ``compat/daphne.py`` beside daphne): a reader (and a grep) cannot tell them apart.
    Dependencies and the standard library keep their names to themselves."""
    from importlib.metadata import packages_distributions

    taken = {
        name
        for name, dists in packages_distributions().items()
        if "realtime-relay" not in dists and not name.startswith("_")
    } | set(sys.stdlib_module_names)
    clashes = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = path.parent.name if path.stem == "__init__" else path.stem
            if name in taken:
                clashes.append(str(path.relative_to(ROOT)))
    assert not clashes, f"modules named like a dependency or a standard module: {clashes}"
