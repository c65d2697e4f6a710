"""Every file or folder README.md and docs/*.md name exists: docs cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = (
    "realtime",
    "relay_site",
    "realtime_simulator",
    "relay_loadtools",
    "tests",
    "docs",
    "templates",
    "deploy",
    r"\.ci",
)
# A path starting at one of the repository's top folders, e.g. `realtime/edge/consumer.py`.
PATH = re.compile(r"(?<![\w/.-])((?:" + "|".join(TOP) + r")/[\w./*-]*[\w*/])")


def named_paths(doc: Path) -> list[str]:
    return sorted({m.group(1).rstrip("/.") for m in PATH.finditer(doc.read_text())})


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_path_a_doc_names_exists(doc: Path) -> None:
    missing = [
        p for p in named_paths(doc) if not (list(ROOT.glob(p)) if "*" in p else (ROOT / p).exists())
    ]
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def test_the_check_finds_paths() -> None:
    # The pattern must see the paths the docs are full of, or the test above checks nothing.
    assert "realtime/session" in named_paths(ROOT / "docs" / "architecture.md")


ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGES = sorted(
    p.parent.name
    for p in (ROOT / "realtime").glob("*/__init__.py")
    if p.parent.name != "migrations"
)
# A path inside realtime/ written short, e.g. `session/core.py` or `edge/protocol.py`.
SHORT = re.compile(r"(?<![\w/.-])((?:" + "|".join(PACKAGES) + r")/[\w/]+\.py)")


def test_architecture_names_every_package_of_realtime() -> None:
    text = ARCHITECTURE.read_text()
    missing = [p for p in PACKAGES if f"realtime/{p}/" not in text]
    assert not missing, f"docs/architecture.md does not say what these packages are: {missing}"


def test_every_module_architecture_names_short_exists() -> None:
    names = sorted(set(SHORT.findall(ARCHITECTURE.read_text())))
    assert "edge/protocol.py" in names  # the pattern sees what the doc is full of
    missing = [n for n in names if not (ROOT / "realtime" / n).exists()]
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
