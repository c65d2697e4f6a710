"""session.update validation and merging, per dialect, plus accessors for effective settings."""

from __future__ import annotations

import copy
from typing import Any

from . import validate
from .errors import ConfigError
from .events import Dialect
from .live.codec import AudioFormat

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
# Audio formats: GA ``{"type": ...}`` (PCM at 24 kHz only, G.711 at 8 kHz), beta names.
GA_FORMAT_RATES = {"audio/pcm": 24000, "audio/pcmu": 8000, "audio/pcma": 8000}
BETA_FORMATS = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
# Semantic VAD has no silence setting; the simulated VAD waits this long after speech before
# it ends the turn: a quarter of the documented maximum wait (8 s / 4 s / 2 s).
EAGERNESS_SILENCE_MS = {"low": 2000, "medium": 1000, "auto": 1000, "high": 500}


def _check_top_level(dialect: Dialect, update: dict[str, Any]) -> None:
    if dialect == "ga":
        if "type" not in update:
            raise validate.missing("session.type")
        if update["type"] != "realtime":
            raise validate.invalid(
                "session.type",
                "Only 'realtime' sessions are simulated; transcription sessions are not.",
            )
        for key in update:
            if key not in GA_KEYS:
                raise validate.unknown(f"session.{key}")
        audio = update.get("audio") or {}
        if not isinstance(audio, dict):
            raise validate.invalid("session.audio", "Invalid 'session.audio': expected an object.")
        for section, allowed in GA_AUDIO_KEYS.items():
            if not isinstance(audio.get(section) or {}, dict):
                raise validate.invalid(
                    f"session.audio.{section}", f"Invalid 'session.audio.{section}'."
                )
            for key in audio.get(section) or {}:
                if key not in allowed:
                    raise validate.unknown(f"session.audio.{section}.{key}")
            if "format" in (audio.get(section) or {}):
                _check_ga_format(audio[section]["format"], f"session.audio.{section}.format")
        if "output_modalities" in update:
            validate.modalities(
                update["output_modalities"], [{"audio"}, {"text"}], "session.output_modalities"
            )
    else:
        for key in update:
            if key not in BETA_KEYS:
                raise validate.unknown(f"session.{key}")
        for key in ("input_audio_format", "output_audio_format"):
            if key in update and update[key] not in BETA_FORMATS:
                raise validate.invalid(
                    f"session.{key}",
                    f"Invalid value: '{update[key]}'. Supported values are: 'pcm16', "
                    "'g711_ulaw', and 'g711_alaw'.",
                )
        if "modalities" in update:
            validate.modalities(
                update["modalities"], [{"text"}, {"text", "audio"}], "session.modalities"
            )


def _check_ga_format(value: Any, param: str) -> None:
    kind = value.get("type", "audio/pcm") if isinstance(value, dict) else None
    if kind not in GA_FORMAT_RATES:
        raise validate.invalid(
            f"{param}.type",
            f"Invalid value: '{kind}'. Supported values are: 'audio/pcm', 'audio/pcmu', and "
            "'audio/pcma'.",
        )
    rate = value.get("rate")
    if rate is not None and rate != GA_FORMAT_RATES[kind]:
        raise validate.invalid(
            f"{param}.rate", f"Invalid 'rate': {kind} supports {GA_FORMAT_RATES[kind]} Hz only."
        )


def audio_format(dialect: Dialect, session: dict[str, Any], direction: str) -> AudioFormat:
    """The session's input or output audio format (``direction``: input or output)."""
    if dialect == "ga":
        value = session["audio"][direction].get("format") or {}
        kind = str(value.get("type") or "audio/pcm")
    else:
        kind = BETA_FORMATS[str(session.get(f"{direction}_audio_format") or "pcm16")]
    return AudioFormat(kind, GA_FORMAT_RATES[kind])


def _merge_ga_input(target: dict[str, Any], sub: dict[str, Any]) -> None:
    param = "session.audio.input"
    for key, value in sub.items():
        if key == "turn_detection":
            value = validate.turn_detection("ga", value, f"{param}.turn_detection")
        elif key == "transcription":
            value = validate.transcription("ga", value, f"{param}.transcription")
        elif key == "noise_reduction":
            value = validate.noise_reduction(
                "ga", value, target.get("noise_reduction"), f"{param}.noise_reduction"
            )
        target[key] = copy.deepcopy(value)


def merge_update(
    dialect: Dialect, current: dict[str, Any], update: Any, audio_sent: bool
) -> dict[str, Any]:
    """Return the new effective session or raise ConfigError like the real service would."""
    if not isinstance(update, dict):
        raise validate.missing("session")
    _check_top_level(dialect, update)
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

    new = copy.deepcopy(current)
    for key, value in update.items():
        if key == "audio" and dialect == "ga":
            if value.get("input"):
                _merge_ga_input(new["audio"]["input"], value["input"])
            for sub_key, sub_value in (value.get("output") or {}).items():
                new["audio"]["output"][sub_key] = copy.deepcopy(sub_value)
        elif key == "turn_detection":
            new[key] = validate.turn_detection("beta", value, "session.turn_detection")
        elif key == "input_audio_transcription":
            new[key] = validate.transcription("beta", value, f"session.{key}")
        elif key == "input_audio_noise_reduction":
            new[key] = validate.noise_reduction("beta", value, new.get(key), f"session.{key}")
        elif key == "truncation":
            new[key] = validate.truncation(value, "session.truncation")
        elif key == "prompt":
            new[key] = validate.prompt(value, "session.prompt")
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


def silence_duration_ms(td: dict[str, Any]) -> int:
    if td.get("type") == "semantic_vad":
        return EAGERNESS_SILENCE_MS[td.get("eagerness") or "auto"]
    return int(td.get("silence_duration_ms", 500))


def idle_timeout_ms(dialect: Dialect, session: dict[str, Any]) -> int | None:
    td = turn_detection(dialect, session)
    if td is None or td.get("type") != "server_vad":
        return None
    value = td.get("idle_timeout_ms")
    return int(value) if value else None


def transcription(dialect: Dialect, session: dict[str, Any]) -> dict[str, Any] | None:
    if dialect == "ga":
        return session["audio"]["input"].get("transcription")
    return session.get("input_audio_transcription")


def audio_out(dialect: Dialect, session: dict[str, Any]) -> bool:
    mods = session.get("output_modalities") if dialect == "ga" else session.get("modalities")
    return "audio" in (mods or [])
