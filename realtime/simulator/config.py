"""session.update validation and merging, per dialect, plus accessors for effective settings."""

from __future__ import annotations

import copy
from typing import Any

from .events import Dialect, default_vad

GA_KEYS = {
    "type",
    "audio",
    "include",
    "instructions",
    "max_output_tokens",
    "model",
    "output_modalities",
    "parallel_tool_calls",
    "prompt",
    "reasoning",
    "tool_choice",
    "tools",
    "tracing",
    "truncation",
}
GA_AUDIO_KEYS = {"input": {"format", "transcription", "noise_reduction", "turn_detection"},
                 "output": {"format", "voice", "speed"}}  # fmt: skip
BETA_KEYS = {
    "modalities",
    "instructions",
    "voice",
    "input_audio_format",
    "output_audio_format",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "turn_detection",
    "tools",
    "tool_choice",
    "temperature",
    "max_response_output_tokens",
    "speed",
    "tracing",
    "model",
    "client_secret",
}
VAD_KEYS = {
    "type",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "idle_timeout_ms",
    "create_response",
    "interrupt_response",
    "eagerness",
}


class ConfigError(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def _unknown(param: str) -> ConfigError:
    return ConfigError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def normalize_vad(dialect: Dialect, value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type", "server_vad") not in (
        "server_vad",
        "semantic_vad",
    ):
        raise ConfigError("invalid_value", f"Invalid value for '{param}'.", param)
    for key in value:
        if key not in VAD_KEYS or (dialect == "beta" and key == "idle_timeout_ms"):
            raise _unknown(f"{param}.{key}")
    if value.get("type") == "semantic_vad":
        semantic = {
            "type": "semantic_vad",
            "eagerness": value.get("eagerness", "auto"),
            "create_response": value.get("create_response", True),
            "interrupt_response": value.get("interrupt_response", True),
        }
        return semantic
    vad = default_vad(dialect)
    vad.update({k: v for k, v in value.items() if k != "eagerness"})
    vad["type"] = "server_vad"
    threshold = vad["threshold"]
    if not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise ConfigError(
            "decimal_above_max_value" if isinstance(threshold, int | float) else "invalid_type",
            f"Invalid '{param}.threshold': expected a number between 0.0 and 1.0.",
            f"{param}.threshold",
        )
    return vad


def _check_modalities(value: Any, allowed: list[set[str]], param: str) -> None:
    if not isinstance(value, list) or set(value) not in allowed or len(set(value)) != len(value):
        raise ConfigError(
            "invalid_value", f"Invalid modalities: {value!r}. Supported combinations are "
            + ", ".join(str(sorted(a)) for a in allowed) + ".", param,
        )  # fmt: skip


def merge_update(
    dialect: Dialect, current: dict[str, Any], update: Any, audio_sent: bool
) -> dict[str, Any]:
    """Return the new effective session or raise ConfigError like the real service would."""
    if not isinstance(update, dict):
        raise ConfigError(
            "missing_required_parameter", "Missing required parameter: 'session'.", "session"
        )
    new = copy.deepcopy(current)
    if dialect == "ga":
        if "type" not in update:
            raise ConfigError(
                "missing_required_parameter",
                "Missing required parameter: 'session.type'.",
                "session.type",
            )
        if update["type"] != "realtime":
            raise ConfigError(
                "invalid_value",
                "Only 'realtime' sessions are simulated; transcription sessions are not.",
                "session.type",
            )
        for key in update:
            if key not in GA_KEYS:
                raise _unknown(f"session.{key}")
        for section, allowed in GA_AUDIO_KEYS.items():
            sub = (update.get("audio") or {}).get(section) or {}
            for key in sub:
                if key not in allowed:
                    raise _unknown(f"session.audio.{section}.{key}")
        if "output_modalities" in update:
            _check_modalities(
                update["output_modalities"], [{"audio"}, {"text"}], "session.output_modalities"
            )
    else:
        for key in update:
            if key not in BETA_KEYS:
                raise _unknown(f"session.{key}")
        if "modalities" in update:
            _check_modalities(
                update["modalities"], [{"text"}, {"text", "audio"}], "session.modalities"
            )
    if "model" in update and update["model"] != current.get("model"):
        raise ConfigError(
            "invalid_value", "Cannot update a session's model after it was created.",
            "session.model",
        )  # fmt: skip
    if audio_sent and voice(dialect, current) != _updated_voice(dialect, update, current):
        raise ConfigError(
            "cannot_update_voice",
            "Cannot update a session's voice after audio has been generated.",
            "session.voice" if dialect == "beta" else "session.audio.output.voice",
        )

    for key, value in update.items():
        if key == "audio" and dialect == "ga":
            for section in ("input", "output"):
                sub = (value or {}).get(section)
                if not sub:
                    continue
                target = new["audio"][section]
                for sub_key, sub_value in sub.items():
                    if sub_key == "turn_detection":
                        sub_value = normalize_vad(
                            "ga", sub_value, "session.audio.input.turn_detection"
                        )
                    target[sub_key] = copy.deepcopy(sub_value)
        elif key == "turn_detection":
            new[key] = normalize_vad("beta", value, "session.turn_detection")
        else:
            new[key] = copy.deepcopy(value)
    return new


def _updated_voice(dialect: Dialect, update: dict[str, Any], current: dict[str, Any]) -> str:
    if dialect == "ga":
        out = ((update.get("audio") or {}).get("output")) or {}
        return str(out["voice"]) if "voice" in out else voice(dialect, current)
    return str(update["voice"]) if "voice" in update else voice(dialect, current)


def voice(dialect: Dialect, session: dict[str, Any]) -> str:
    value = session["audio"]["output"].get("voice") if dialect == "ga" else session.get("voice")
    if isinstance(value, dict):
        return str(value.get("id", "alloy"))
    return str(value or "alloy")


def turn_detection(dialect: Dialect, session: dict[str, Any]) -> dict[str, Any] | None:
    if dialect == "ga":
        return session["audio"]["input"].get("turn_detection")
    return session.get("turn_detection")


def transcription(dialect: Dialect, session: dict[str, Any]) -> dict[str, Any] | None:
    if dialect == "ga":
        return session["audio"]["input"].get("transcription")
    return session.get("input_audio_transcription")


def audio_out(dialect: Dialect, session: dict[str, Any]) -> bool:
    mods = session.get("output_modalities") if dialect == "ga" else session.get("modalities")
    return "audio" in (mods or [])
