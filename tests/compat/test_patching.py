"""The patching mechanism: check, apply, probe — or one warning and the plain path."""

from __future__ import annotations

import logging
from importlib.metadata import version

import pytest
from prometheus_client import REGISTRY

from realtime import compat
from realtime.compat import patching
from realtime.compat.patching import Mismatch, Patch, expect_parameters
from tests.compat.conftest import fresh


class Target:
    def method(self, a, b=1):
        return "original"


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value("relay_compat_patch_active", {"patch": name})


def replace_method(replace) -> None:
    replace(Target, "method", lambda self, a, b=1: "patched")


@pytest.fixture
def made(request):
    """make(**steps) -> a Patch named after the test, reset afterwards."""
    names = []

    def make(**steps) -> Patch:
        name = f"test_{request.node.name[:40]}_{len(names)}"
        names.append(name)
        return Patch(name=name, packages=("daphne",), targets=("Target.method",), **steps)

    yield make
    for name in names:
        patching.reset(name)


def test_a_patch_that_fits_is_applied_once_and_shown_active(made):
    applied = []

    def apply(replace):
        applied.append(True)
        replace_method(replace)

    patch = made(apply=apply)
    assert patching.install(patch) and patching.install(patch)
    assert applied == [True] and Target().method(0) == "patched"
    assert patching.active(patch.name) and gauge(patch.name) == 1
    patching.reset(patch.name)
    assert Target().method(0) == "original"


def test_a_changed_target_gives_one_warning_with_the_version_and_the_plain_path(made, caplog):
    def check():
        expect_parameters(Target.method, ("self", "a", "b", "c"), "Target.method", "daphne")

    patch = made(check=check, apply=replace_method)
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        assert not patching.install(patch)
        assert not patching.install(patch)  # decided once: no second warning
    [record] = caplog.records
    message = record.getMessage()
    assert patch.name in message and f"daphne {version('daphne')}" in message
    assert "Target.method" in message and "plain path" in message
    assert Target().method(0) == "original" and gauge(patch.name) == 0


@pytest.mark.parametrize("failing", ["probe", "apply"])
def test_a_patch_whose_probe_or_apply_fails_is_undone_whole(made, caplog, failing):
    def apply(replace):
        replace_method(replace)
        replace(Target, "extra", 1)
        if failing == "apply":
            raise AttributeError("'WebSocketProtocol' object has no attribute 'x'")

    def probe():
        raise Mismatch("no close frame written", "autobahn")

    patch = made(apply=apply, probe=probe)
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        assert not patching.install(patch)
    assert Target().method(0) == "original" and not hasattr(Target, "extra")
    [record] = caplog.records
    expected = f"autobahn {version('autobahn')}" if failing == "probe" else "AttributeError"
    assert expected in record.getMessage()


def test_a_patch_not_needed_here_is_neither_installed_nor_warned_about(made, caplog):
    patch = made(apply=replace_method, needed=lambda: False)
    with caplog.at_level(logging.WARNING, logger="realtime.compat"):
        assert not patching.install(patch)
    assert caplog.records == [] and Target().method(0) == "original"
    assert patch.name not in patching.status()


def test_positional_and_keyword_signatures():
    def positional(self, payload, is_binary, extra=None): ...

    expect_parameters(positional, ("self", "payload", "isBinary"), "f")  # names do not matter
    with pytest.raises(Mismatch, match="no longer takes"):
        expect_parameters(positional, ("self", "payload", "isBinary"), "f", by_name=True)
    with pytest.raises(Mismatch, match="no longer takes"):
        expect_parameters(positional, ("self", "payload"), "f")  # a required one more
    with pytest.raises(Mismatch, match="is gone"):
        expect_parameters(None, ("self",), "f")


def test_every_server_patch_fits_the_pinned_versions(redecide):
    """With what constraints.txt pins, every patch is on: a failure here names the patch and
    what changed (an upgrade to refresh the patch for, or to leave on the plain path)."""
    for patch in compat.server_patches():
        fresh(redecide, patch)
    decided = compat.install_server_patches()
    assert decided == {patch.name: True for patch in compat.server_patches()}


def test_patches_are_installed_where_the_server_is_built_not_by_manage_py():
    """Another manage.py command (here: check) loads no patch; building the application
    installs them."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = (
        "import django, os, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'relay_site.settings')\n"
        "from django.core.management import call_command\n"
        "django.setup()\n"
        "call_command('check', verbosity=0)\n"
        "from realtime.compat import patching\n"
        "print(sorted(patching.status()))\n"
        "import daphne.server\n"
        "from relay_site.application import build_application\n"
        "build_application()\n"
        "print(sorted(k for k, v in patching.status().items() if v))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    before, after = out.stdout.strip().splitlines()[-2:]
    assert before == "[]"
    assert after == str(sorted(patch.name for patch in compat.server_patches()))
