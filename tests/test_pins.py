"""What CI tests is pinned: constraints.txt against what is installed, pyproject and README.

An unpinned upgrade (``pip install -U openai``, or an install without ``-c constraints.txt``
after a release) fails here before it can change behaviour unseen.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
REFRESH = "install with `-c constraints.txt`, or refresh the pins (docs/operations.md)"


def pins() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, pinned = line.partition("==")
            assert sep and pinned, f"constraints.txt: not an exact pin: {line!r}"
            out[canonicalize_name(name)] = pinned
    return out


def quick_start() -> list[str]:
    """The commands of README's quick start, one per fenced block."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_the_installed_openai_is_the_pinned_one() -> None:
    pinned, installed = pins()["openai"], version("openai")
    assert installed == pinned, f"openai {installed} is installed, {pinned} pinned; {REFRESH}"


def test_every_installed_pinned_package_is_at_its_pin() -> None:
    drift = {}
    for name, pinned in pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # a platform or Python version that does not need it
        if installed != pinned:
            drift[name] = f"{installed} installed, {pinned} pinned"
    assert not drift, f"{drift}; {REFRESH}"


@pytest.mark.parametrize("extra", ["", "test"])
def test_every_dependency_is_pinned_within_pyproject_bounds(extra: str) -> None:
    pinned = pins()
    for spec in requires("realtime-relay") or []:
        req = Requirement(spec)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        if req.marker is None and extra:
            continue  # checked once, without extras
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} ({extra or 'base'}) is not in constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {req.name}=={pinned[name]}, pyproject asks {req.specifier}"
        )


def test_readme_quick_start_is_two_pinned_commands() -> None:
    serve, test = quick_start()
    for command in (serve, test):
        assert "\n" not in command and command.startswith("python3 -m venv .venv && ")
        assert " install -c constraints.txt -e " in command
    assert serve.endswith(" && .venv/bin/python manage.py serve")
    assert test.endswith(" && .venv/bin/pytest")


def test_ci_runs_exactly_readmes_test_command() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    assert commands[-1] == quick_start()[1]
