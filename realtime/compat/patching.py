"""One way to change a framework's internals: declared, checked, applied, probed — or left off.

A ``Patch`` names what it changes (``targets``) and the distributions it was written against
(``packages``), and has up to three steps:

- ``check()``: the targets still have the shape the patch expects (attributes, signatures,
  instance attributes of a throw-away object); raises ``Mismatch`` if not;
- ``apply(replace)``: the change itself, made only through ``replace(owner, name, value)`` so
  that it can be undone;
- ``probe()``: after the change, a behavioural check on in-memory objects (a daphne
  connection on a fake transport, a socket pair…); raises ``Mismatch`` and the change is
  undone.

``install(patch)`` runs them once per process. Whatever goes wrong — a ``Mismatch``, an
``AttributeError`` of a renamed internal, an exception inside the library — the patch stays
off, ONE warning names the packages with their installed versions and what did not fit, and
the relay keeps the plain path (slower or less polite, never wrong). The Prometheus gauge
``relay_compat_patch_active{patch=…}`` says which patches this process runs with (livemin
across workers: 1 only when every live worker has it).

A patch with ``needed()`` false (e.g. the daphne patches when daphne does not serve this
process) is not installed and logs nothing.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import Gauge

log = logging.getLogger("realtime.compat")

ACTIVE = Gauge(
    "relay_compat_patch_active",
    "Framework patches this worker runs with (realtime/compat): 1 active, 0 off (the target "
    "changed shape, so the plain path is used, or the patch is not needed here)",
    ["patch"],
    multiprocess_mode="livemin",
)

_MISSING = object()


class Mismatch(Exception):
    """What a patch expects of its target is not there (the message says what)."""

    def __init__(self, detail: str, package: str | None = None) -> None:
        super().__init__(detail)
        self.package = package


def expect(condition: object, detail: str, package: str | None = None) -> None:
    if not condition:
        raise Mismatch(detail, package)


def expect_parameters(
    func: Any,
    names: Iterable[str],
    where: str,
    package: str | None = None,
    *,
    by_name: bool = False,
) -> None:
    """``func`` is callable with ``len(names)`` positional arguments (``self`` included);
    with ``by_name=True`` (called with keywords) its parameters begin with ``names``."""
    expect(callable(func), f"{where} is gone", package)
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as exc:
        raise Mismatch(f"{where} has no readable signature ({exc})", package) from None
    wanted = list(names)
    if by_name:
        found = [p.name for p in parameters]
        fits = found[: len(wanted)] == wanted
    else:
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        found = [p.name for p in parameters if p.kind in positional]
        required = [p for p in parameters if p.kind in positional and p.default is p.empty]
        variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
        fits = len(required) <= len(wanted) and (variadic or len(found) >= len(wanted))
    expect(fits, f"{where}{tuple(found)} no longer takes {tuple(wanted)}", package)


def expect_attributes(obj: Any, names: Iterable[str], where: str, package: str | None = None):
    missing = [name for name in names if not hasattr(obj, name)]
    expect(not missing, f"{where} lost {', '.join(missing)}", package)


class Replacer:
    """Records each replacement so that a patch that fails its probe is undone whole."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any]] = []

    def __call__(self, owner: Any, name: str, value: Any) -> None:
        previous = vars(owner).get(name, _MISSING) if hasattr(owner, "__dict__") else _MISSING
        setattr(owner, name, value)
        self._undo.append((owner, name, previous))

    def undo(self) -> None:
        for owner, name, previous in reversed(self._undo):
            if previous is _MISSING:
                try:
                    delattr(owner, name)
                except AttributeError:
                    pass
            else:
                setattr(owner, name, previous)
        self._undo.clear()


def _always() -> bool:
    return True


def served_by_daphne() -> bool:
    """daphne serves this process (``serve``, ``daphne …``, ``runserver``: each loads
    ``daphne.server`` before the application); under another ASGI server the daphne, autobahn
    and Twisted patches are not needed."""
    return "daphne.server" in sys.modules


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Patch:
    name: str
    packages: tuple[str, ...]  # distributions, as pip names them
    targets: tuple[str, ...]  # what it changes or relies on, for the warning and the docs
    check: Callable[[], None] = _nothing
    apply: Callable[[Replacer], None] = lambda replace: None
    probe: Callable[[], None] = _nothing
    needed: Callable[[], bool] = field(default=_always)


_status: dict[str, bool] = {}
_reported: set[str] = set()
_applied: dict[str, Replacer] = {}


def installed_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def versions(packages: Iterable[str]) -> str:
    return ", ".join(f"{name} {installed_version(name)}" for name in packages)


def install(patch: Patch) -> bool:
    """Apply ``patch`` once per process; True when it is active."""
    if patch.name in _status:
        return _status[patch.name]
    if not patch.needed():
        return False  # asked again later (e.g. once daphne is loaded)
    replace = Replacer()
    try:
        patch.check()
        patch.apply(replace)
        patch.probe()
    except Exception as exc:
        replace.undo()
        _set(patch.name, False)
        _warn(patch, exc)
        return False
    _applied[patch.name] = replace
    _set(patch.name, True)
    return True


def report(patch: Patch, active: bool, reason: object = None) -> None:
    """For reaches decided per use (e.g. per SDK connection): the gauge, and one warning."""
    previous = _status.get(patch.name)
    if previous is None or previous:
        _set(patch.name, active)
    if not active and patch.name not in _reported:
        _warn(patch, reason if reason is not None else Mismatch("not usable"))


def active(name: str) -> bool:
    return _status.get(name, False)


def status() -> dict[str, bool]:
    """Every patch decided so far in this process: name → active."""
    return dict(_status)


def reset(name: str) -> None:
    """Tests only: undo the patch if it is on, and let ``install`` decide again."""
    replace = _applied.pop(name, None)
    if replace is not None:
        replace.undo()
    _status.pop(name, None)
    _reported.discard(name)


def _set(name: str, value: bool) -> None:
    _status[name] = value
    ACTIVE.labels(name).set(1 if value else 0)


def _warn(patch: Patch, exc: BaseException) -> None:
    if patch.name in _reported:
        return
    _reported.add(patch.name)
    package = getattr(exc, "package", None)
    named = versions([package] if package else patch.packages)
    detail = str(exc) if isinstance(exc, Mismatch) else f"{type(exc).__name__}: {exc}"
    log.warning(
        "compat: %s stays off: %s is not what it was written against (%s); the relay uses "
        "the plain path. Patches: %s. See realtime/compat.",
        patch.name,
        named,
        detail,
        ", ".join(patch.targets),
    )
