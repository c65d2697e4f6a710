"""Server-event builders for the two wire dialects (GA and beta).

Everything here returns plain dicts shaped like the real service's JSON; the session state
machine decides when to send them.
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Literal

Dialect = Literal["ga", "beta"]

_counter = itertools.count(1)
_salt = os.urandom(3).hex()

# Output event names that differ between dialects.
NAMES: dict[str, dict[str, str]] = {
    "ga": {
        "text_delta": "response.output_text.delta",
        "text_done": "response.output_text.done",
        "audio_delta": "response.output_audio.delta",
        "audio_done": "response.output_audio.done",
        "transcript_delta": "response.output_audio_transcript.delta",
        "transcript_done": "response.output_audio_transcript.done",
    },
    "beta": {
        "text_delta": "response.text.delta",
        "text_done": "response.text.done",
        "audio_delta": "response.audio.delta",
        "audio_done": "response.audio.done",
        "transcript_delta": "response.audio_transcript.delta",
        "transcript_done": "response.audio_transcript.done",
    },
}

# Models the beta session schema accepts; Azure reports the underlying model, not the deployment.
BETA_MODELS = {
    "gpt-realtime",
    "gpt-realtime-2025-08-28",
    "gpt-4o-realtime-preview",
    "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-realtime-preview-2024-12-17",
    "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-mini-realtime-preview",
    "gpt-4o-mini-realtime-preview-2024-12-17",
}

DEFAULT_INSTRUCTIONS = "You are a helpful, witty assistant. This is the offline simulator."


def new_id(prefix: str) -> str:
    return f"{prefix}_{_salt}{next(_counter):012x}"


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "event_id": new_id("event"), **fields}


def default_vad(dialect: Dialect) -> dict[str, Any]:
    vad: dict[str, Any] = {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
    }
    if dialect == "ga":
        vad["idle_timeout_ms"] = None
    vad["create_response"] = True
    vad["interrupt_response"] = True
    return vad


def default_session(dialect: Dialect, model: str, expires_at: int) -> dict[str, Any]:
    if dialect == "ga":
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": new_id("sess"),
            "model": model,
            "output_modalities": ["audio"],
            "instructions": DEFAULT_INSTRUCTIONS,
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "expires_at": expires_at,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": default_vad("ga"),
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": "alloy",
                    "speed": 1.0,
                },
            },
            "include": None,
        }
    return {
        "id": new_id("sess"),
        "object": "realtime.session",
        "model": model if model in BETA_MODELS else "gpt-4o-realtime-preview",
        "expires_at": expires_at,
        "modalities": ["text", "audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "voice": "alloy",
        "input_audio_format": "pcm16",
        "output_audio_format": "pcm16",
        "input_audio_transcription": None,
        "input_audio_noise_reduction": None,
        "turn_detection": default_vad("beta"),
        "tools": [],
        "tool_choice": "auto",
        "temperature": 0.8,
        "max_response_output_tokens": "inf",
        "speed": 1.0,
        "tracing": None,
    }


def error(
    code: str | None,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    client_event_id: str | None = None,
) -> dict[str, Any]:
    return event(
        "error",
        error={
            "type": type_,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id,
        },
    )


def user_text_item(dialect: Dialect, item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "object": "realtime.item",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


def user_audio_item(item_id: str, transcript: str | None) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "object": "realtime.item",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def assistant_item(item_id: str, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "object": "realtime.item",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def assistant_content(dialect: Dialect, audio: bool, text: str) -> dict[str, Any]:
    """Content of a finished assistant item (as in output_item.done / response.done)."""
    if audio:
        return {"type": "output_audio" if dialect == "ga" else "audio", "transcript": text}
    return {"type": "output_text" if dialect == "ga" else "text", "text": text}


def content_part(audio: bool, text: str) -> dict[str, Any]:
    return {"type": "audio", "transcript": text} if audio else {"type": "text", "text": text}


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "object": "realtime.item",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def response_object(
    dialect: Dialect,
    response_id: str,
    conversation_id: str | None,
    *,
    status: str,
    modalities: list[str],
    voice: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None = None,
    status_details: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    max_output_tokens: int | str = "inf",
) -> dict[str, Any]:
    resp: dict[str, Any] = {
        "object": "realtime.response",
        "id": response_id,
        "status": status,
        "status_details": status_details,
        "output": output,
        "conversation_id": conversation_id,
        "max_output_tokens": max_output_tokens,
        "usage": usage,
        "metadata": metadata,
    }
    if dialect == "ga":
        resp["output_modalities"] = modalities
        resp["audio"] = {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": voice}}
    else:
        resp["modalities"] = ["text", "audio"] if "audio" in modalities else ["text"]
        resp["voice"] = voice
        resp["output_audio_format"] = "pcm16"
        resp["temperature"] = 0.8
    return resp


def usage(
    dialect: Dialect,
    *,
    in_text: int,
    in_audio: int,
    cached: int,
    out_text: int,
    out_audio: int,
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "text_tokens": in_text,
        "audio_tokens": in_audio,
        "cached_tokens": cached,
    }
    if dialect == "ga":
        details["image_tokens"] = 0
        details["cached_tokens_details"] = {
            "text_tokens": min(cached, in_text),
            "audio_tokens": cached - min(cached, in_text),
            "image_tokens": 0,
        }
    return {
        "total_tokens": in_text + in_audio + out_text + out_audio,
        "input_tokens": in_text + in_audio,
        "output_tokens": out_text + out_audio,
        "input_token_details": details,
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }


def rate_limits(used_tokens: int) -> dict[str, Any]:
    return event(
        "rate_limits.updated",
        rate_limits=[
            {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
            {
                "name": "tokens",
                "limit": 40000,
                "remaining": max(0, 40000 - used_tokens),
                "reset_seconds": round(used_tokens * 60 / 40000, 3),
            },
        ],
    )


def text_tokens(text: str) -> int:
    """Rough BPE-ish estimate: one token per four characters."""
    return (len(text) + 3) // 4
