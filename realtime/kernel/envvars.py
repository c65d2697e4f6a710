"""Reading one environment variable: present or not, parsed, range-checked; every error a
``ConfigError`` whose message names the variable. ``realtime.kernel.config`` builds the relay's
configuration from these."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """Invalid or half-given configuration; the message names the variable."""


def text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


N = TypeVar("N", int, float)


def number(env: Mapping[str, str], name: str, default: N, lo: N, hi: N, kind: type[N]) -> N:
    raw = text(env, name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


def integer(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    return number(env, name, default, lo, hi, int)


def decimal(env: Mapping[str, str], name: str, default: float, lo: float, hi: float) -> float:
    return number(env, name, float(default), float(lo), float(hi), float)


def url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = text(env, name)
    if raw is None:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{name} must be a URL starting with {' or '.join(schemes)}://")
    return raw.rstrip("/")


def choice(
    env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str, upper: bool = False
) -> str:
    raw = text(env, name)
    if raw is None:
        return default
    value = raw.upper() if upper else raw.lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def secret(env: Mapping[str, str], name: str) -> str:
    """NAME, or the contents of the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    path = text(env, f"{name}_FILE")
    if path:
        try:
            return Path(path).readtext().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE names a file that cannot be read ({exc})") from None
    return text(env, name) or ""


def boolean(env: Mapping[str, str], name: str) -> bool | None:
    raw = text(env, name)
    if raw is None:
        return None
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")
