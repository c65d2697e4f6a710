"""Value checks for session settings, shaped like the real service's errors.

Each function takes the client's value and the dotted ``param`` it came from, and returns the
value the session keeps (and echoes) or raises ConfigError: ``unknown_parameter`` for a field
the dialect's schema does not have, ``invalid_value`` for a value it does not accept,
``missing_required_parameter`` for a required field left out.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .errors import ConfigError
from .events import Dialect, default_vad

SERVER_VAD_KEYS = {"type", "threshold", "prefix_padding_ms", "silence_duration_ms",
                   "idle_timeout_ms", "create_response", "interrupt_response"}  # fmt: skip
SEMANTIC_VAD_KEYS = {"type", "eagerness", "create_response", "interrupt_response"}
# Beta has one flat turn-detection object for both types (and no idle timeout).
BETA_VAD_KEYS = (SERVER_VAD_KEYS | SEMANTIC_VAD_KEYS) - {"idle_timeout_ms"}
EAGERNESS = ("low", "medium", "high", "auto")
NOISE_REDUCTION_TYPES = ("near_field", "far_field")
TRANSCRIPTION_KEYS = {
    "ga": {"model", "language", "prompt", "delay", "keywords", "languages"},
    "beta": {"model", "language", "prompt"},
}
PROMPT_VARIABLE_TYPES = ("input_text", "input_image", "input_file")
_ISO_639_1 = re.compile(r"[a-z]{2}")


def unknown(param: str) -> ConfigError:
    return ConfigError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def invalid(param: str, message: str) -> ConfigError:
    return ConfigError("invalid_value", message, param)


def missing(param: str) -> ConfigError:
    return ConfigError(
        "missing_required_parameter", f"Missing required parameter: '{param}'.", param
    )


def _check_keys(value: dict[str, Any], allowed: set[str], param: str) -> None:
    for key in value:
        if key not in allowed:
            raise unknown(f"{param}.{key}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _one_of(value: Any, allowed: tuple[str, ...], param: str) -> None:
    if value not in allowed:
        supported = ", ".join(f"'{a}'" for a in allowed)
        raise invalid(param, f"Invalid value: {value!r}. Supported values are: {supported}.")


def _bools(value: dict[str, Any], param: str) -> None:
    for key in ("create_response", "interrupt_response"):
        if key in value and not isinstance(value[key], bool):
            raise invalid(f"{param}.{key}", f"Invalid '{param}.{key}': expected a boolean.")


def turn_detection(dialect: Dialect, value: Any, param: str) -> dict[str, Any] | None:
    """Replaces the whole turn-detection object; server-VAD defaults are filled in."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(param, f"Invalid '{param}': expected an object or null.")
    kind = value.get("type", "server_vad")
    _one_of(kind, ("server_vad", "semantic_vad"), f"{param}.type")
    if dialect == "beta":
        allowed = BETA_VAD_KEYS
    else:
        allowed = SEMANTIC_VAD_KEYS if kind == "semantic_vad" else SERVER_VAD_KEYS
    _check_keys(value, allowed, param)
    _bools(value, param)
    if kind == "semantic_vad":
        eagerness = value.get("eagerness", "auto")
        _one_of(eagerness, EAGERNESS, f"{param}.eagerness")
        return {
            "type": "semantic_vad",
            "eagerness": eagerness,
            "create_response": value.get("create_response", True),
            "interrupt_response": value.get("interrupt_response", True),
        }
    if "eagerness" in value:  # beta only (GA rejected it above); it means nothing for server VAD
        _one_of(value["eagerness"], EAGERNESS, f"{param}.eagerness")
    vad = default_vad(dialect)
    vad.update({k: v for k, v in value.items() if k != "eagerness"})
    vad["type"] = "server_vad"
    threshold = vad["threshold"]
    if not _is_number(threshold) or not 0.0 <= threshold <= 1.0:
        raise ConfigError(
            "decimal_above_max_value" if _is_number(threshold) else "invalid_type",
            f"Invalid '{param}.threshold': expected a number between 0.0 and 1.0.",
            f"{param}.threshold",
        )
    for key in ("prefix_padding_ms", "silence_duration_ms"):
        if not _is_int(vad[key]) or vad[key] < 0:
            raise invalid(f"{param}.{key}", f"Invalid '{param}.{key}': expected an integer >= 0.")
    idle = vad.get("idle_timeout_ms")
    if idle is not None and (not _is_int(idle) or idle <= 0):
        raise invalid(
            f"{param}.idle_timeout_ms",
            f"Invalid '{param}.idle_timeout_ms': expected a positive integer or null.",
        )
    return vad


def noise_reduction(
    dialect: Dialect, value: Any, current: Any, param: str
) -> dict[str, Any] | None:
    """Merged into the current setting: the SDK says an omitted `strength` is preserved."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(param, f"Invalid '{param}': expected an object or null.")
    _check_keys(value, {"type", "strength"} if dialect == "ga" else {"type"}, param)
    merged = {**(current if isinstance(current, dict) else {}), **value}
    if "type" not in merged:
        raise missing(f"{param}.type")
    _one_of(merged["type"], NOISE_REDUCTION_TYPES, f"{param}.type")
    strength = merged.get("strength", 1.0)
    if not _is_number(strength) or not 0.0 <= strength <= 1.0:
        raise invalid(
            f"{param}.strength", f"Invalid '{param}.strength': expected a number from 0 to 1."
        )
    return merged


def transcription(dialect: Dialect, value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(param, f"Invalid '{param}': expected an object or null.")
    _check_keys(value, TRANSCRIPTION_KEYS[dialect], param)
    for key in ("model", "prompt", "language", "delay"):
        if key in value and not isinstance(value[key], str):
            raise invalid(f"{param}.{key}", f"Invalid '{param}.{key}': expected a string.")
    language = value.get("language")
    if language is not None and not _ISO_639_1.fullmatch(language):
        raise invalid(
            f"{param}.language",
            f"Invalid language '{language}'. Language parameter must be specified in "
            "ISO-639-1 format.",
        )
    return copy.deepcopy(value)


def truncation(value: Any, param: str) -> Any:
    if value in ("auto", "disabled"):
        return value
    if not isinstance(value, dict):
        raise invalid(
            param, f"Invalid '{param}': expected 'auto', 'disabled' or a retention_ratio object."
        )
    _check_keys(value, {"type", "retention_ratio", "token_limits"}, param)
    if "type" not in value:
        raise missing(f"{param}.type")
    _one_of(value["type"], ("retention_ratio",), f"{param}.type")
    if "retention_ratio" not in value:
        raise missing(f"{param}.retention_ratio")
    ratio = value["retention_ratio"]
    if not _is_number(ratio) or not 0.0 <= ratio <= 1.0:
        raise invalid(
            f"{param}.retention_ratio",
            f"Invalid '{param}.retention_ratio': expected a number from 0.0 to 1.0.",
        )
    limits = value.get("token_limits")
    if limits is not None:
        if not isinstance(limits, dict):
            raise invalid(f"{param}.token_limits", f"Invalid '{param}.token_limits'.")
        _check_keys(limits, {"post_instructions"}, f"{param}.token_limits")
        post = limits.get("post_instructions")
        if post is not None and (not _is_int(post) or post < 1):
            raise invalid(
                f"{param}.token_limits.post_instructions",
                f"Invalid '{param}.token_limits.post_instructions': expected a positive integer.",
            )
    return copy.deepcopy(value)


def prompt(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(param, f"Invalid '{param}': expected an object or null.")
    _check_keys(value, {"id", "version", "variables"}, param)
    if "id" not in value:
        raise missing(f"{param}.id")
    if not isinstance(value["id"], str) or not value["id"]:
        raise invalid(f"{param}.id", f"Invalid '{param}.id': expected a non-empty string.")
    if value.get("version") is not None and not isinstance(value["version"], str):
        raise invalid(f"{param}.version", f"Invalid '{param}.version': expected a string.")
    variables = value.get("variables")
    if variables is not None:
        if not isinstance(variables, dict):
            raise invalid(f"{param}.variables", f"Invalid '{param}.variables': expected a map.")
        for name, var in variables.items():
            if isinstance(var, str):
                continue
            if not isinstance(var, dict) or var.get("type") not in PROMPT_VARIABLE_TYPES:
                raise invalid(
                    f"{param}.variables.{name}",
                    f"Invalid '{param}.variables.{name}': expected a string or an "
                    "input_text, input_image or input_file object.",
                )
    return copy.deepcopy(value)


def modalities(value: Any, allowed: list[set[str]], param: str) -> None:
    if not isinstance(value, list) or set(value) not in allowed or len(set(value)) != len(value):
        raise ConfigError(
            "invalid_value", f"Invalid modalities: {value!r}. Supported combinations are "
            + ", ".join(str(sorted(a)) for a in allowed) + ".", param,
        )  # fmt: skip
