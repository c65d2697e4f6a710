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
