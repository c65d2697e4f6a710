"""The Realtime API session configuration (``session.update``) built from the relay's config.

GA shape (OpenAI, Azure ``/openai/v1``) and the legacy beta shape (Azure preview
``api-version``). Settings the beta shape has no field for (idle timeout, truncation, a stored
prompt) are left out there; ``realtime.kernel.config`` warns about them at start-up.
"""

from __future__ import annotations

from typing import Any

from realtime.kernel.config import RelayConfig
from realtime.kernel.history import Snapshot, ToolExchange

PCM = {"type": "audio/pcm", "rate": 24000}
PCMU = {"type": "audio/pcmu"}  # G.711 μ-law 8 kHz: a phone line's audio
FORMATS = {"pcm16": PCM, "pcmu": PCMU}
BETA_FORMATS = {"pcm16": "pcm16", "pcmu": "g711_ulaw"}


def _turn_detection(config: RelayConfig, dialect: str) -> dict[str, Any] | None:
    td = config.turn_detection
    if td is None:
        return None
    body: dict[str, Any] = {"type": td.type}
    if td.type == "server_vad":
        body |= {
            "threshold": td.threshold,
            "prefix_padding_ms": td.prefix_padding_ms,
            "silence_duration_ms": td.silence_duration_ms,
        }
        if td.idle_timeout_ms and dialect == "ga":
            body["idle_timeout_ms"] = td.idle_timeout_ms
    else:
        body["eagerness"] = td.eagerness
    body |= {"create_response": td.create_response, "interrupt_response": td.interrupt_response}
    return body


def _transcription(config: RelayConfig) -> dict[str, Any] | None:
    if not config.transcription_model:
        return None
    body: dict[str, Any] = {"model": config.transcription_model}
    if config.transcription_language:
        body["language"] = config.transcription_language
    if config.transcription_prompt:
        body["prompt"] = config.transcription_prompt
    return body


def _noise_field(config: RelayConfig, name: str) -> dict[str, Any]:
    """Noise reduction is off unless configured: the field is sent only when it is on."""
    return {name: {"type": config.noise_reduction}} if config.noise_reduction else {}


def _truncation(config: RelayConfig) -> str | dict[str, Any]:
    if isinstance(config.truncation, float):
        return {"type": "retention_ratio", "retention_ratio": config.truncation}
    return config.truncation


def session_update(
    config: RelayConfig, dialect: str, tools: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    tool_fields: dict[str, Any] = {"tools": tools, "tool_choice": "auto"} if tools else {}
    if dialect == "beta":
        modalities = ["text"] if config.output_modalities == "text" else ["text", "audio"]
        return {
            "type": "session.update",
            "session": {
                "modalities": modalities,
                "instructions": config.instructions,
                "voice": config.voice,
                "input_audio_format": BETA_FORMATS[config.audio_format],
                "output_audio_format": BETA_FORMATS[config.audio_format],
                "input_audio_transcription": _transcription(config),
                "turn_detection": _turn_detection(config, dialect),
            }
            | _noise_field(config, "input_audio_noise_reduction")
            | tool_fields,
        }
    audio_format = FORMATS[config.audio_format]
    session: dict[str, Any] = {
        "type": "realtime",
        "output_modalities": [config.output_modalities],
        "instructions": config.instructions,
        "audio": {
            "input": {
                "format": audio_format,
                "transcription": _transcription(config),
                "turn_detection": _turn_detection(config, dialect),
            }
            | _noise_field(config, "noise_reduction"),
            "output": {"format": audio_format, "voice": config.voice},
        },
    }
    session |= tool_fields
    if config.truncation != "auto":  # the service's default: sent only when changed
        session["truncation"] = _truncation(config)
    if config.prompt_id:
        prompt: dict[str, Any] = {"id": config.prompt_id}
        if config.prompt_version:
            prompt["version"] = config.prompt_version
        session["prompt"] = prompt
    return {"type": "session.update", "session": session}


def replay_items(history: Snapshot, dialect: str) -> list[dict[str, Any]]:
    """The conversation so far as ``conversation.item.create`` items for a new session, in
    order: messages as text (an answer cut short keeps ``status: incomplete``), tool calls as
    ``function_call`` + ``function_call_output`` items. Items the history dropped are
    mentioned in a system message first."""
    items: list[dict[str, Any]] = []
    if history.dropped:
        note = (
            f"This conversation continues from an earlier session; its {history.dropped} "
            "oldest messages are not shown."
        )
        items.append(_message("system", note))
    answer_type = "output_text" if dialect == "ga" else "text"
    for item in history.items:
        if isinstance(item, ToolExchange):
            items.append(
                {
                    "type": "function_call",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments,
                }
            )
            items.append(
                {"type": "function_call_output", "call_id": item.call_id, "output": item.output}
            )
        elif item.role == "assistant":
            message = {
                "type": "message",
                "role": "assistant",
                "content": [{"type": answer_type, "text": item.text}],
            }
            if not item.complete:
                message["status"] = "incomplete"
            items.append(message)
        else:
            items.append(_message(item.role, item.text))
    return items


def _message(role: str, text: str) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]}
