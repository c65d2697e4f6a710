"""What `manage.py talk` reads and prints: WAV files in and out, a tool's line, an answer's
latency line (pure functions, tested on their own: tests/cli/test_talk.py)."""

from __future__ import annotations

import array
import json
import sys
import wave
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

RATE = 24000
SHOWN_CHARS = 300  # a tool's arguments or result, on one line


def read_wav_24k(path: Path) -> bytes:
    """PCM16 mono 24 kHz from a WAV file (mono/stereo, 16-bit, 24 or 48 kHz)."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (OSError, wave.Error) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from None
    if width != 2:
        raise CommandError(f"{path}: only 16-bit PCM WAV files are supported")
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    if channels == 2:
        samples = array.array(
            "h", ((a + b) // 2 for a, b in zip(samples[::2], samples[1::2], strict=False))
        )
    elif channels != 1:
        raise CommandError(f"{path}: only mono or stereo WAV files are supported")
    if rate == 48000:
        samples = array.array(
            "h", ((a + b) // 2 for a, b in zip(samples[::2], samples[1::2], strict=False))
        )
    elif rate != RATE:
        raise CommandError(f"{path}: sample rate {rate} Hz; use 24 kHz or 48 kHz")
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def follow_up(message: dict) -> bool:
    """Another answer is coming: a tool runs, or the model started answering again."""
    return message.get("type") == "tool_call" or message.get("action") == "response_started"


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def tool_line(message: dict[str, Any]) -> str:
    """``tool: NAME [ARGUMENTS] STATUS [→ RESULT]``: the arguments and the result only where
    the tool lets the client see them (``show_arguments``/``show_result``), the error's kind
    on an error."""
    parts = ["tool:", str(message.get("name"))]
    if "arguments" in message:
        parts.append(_shown(message["arguments"]))
    status = str(message.get("status"))
    parts.append(f"{status}: {message['error']}" if message.get("error") else status)
    if "result" in message:
        parts += ["→", _shown(message["result"])]
    return " ".join(parts)


def save_wav(path: Path, pcm: bytearray) -> None:
    """PCM16 mono 24 kHz into a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(bytes(pcm))


def latency_line(latency: Any) -> str:
    """``response_done``'s ``latency_ms`` as one line (empty when no user turn was timed)."""
    if not isinstance(latency, dict):
        return ""
    audio, text, relay = (latency.get(k) for k in ("first_audio", "first_text", "relay"))
    if audio is None and text is None:
        return ""
    parts = []
    if audio is not None:
        parts.append(f"first audio {audio:g} ms")
    if text is not None:
        parts.append(f"first text {text:g} ms")
    if relay is not None:
        parts.append(f"relay's share {relay:g} ms")
    return "latency: " + ", ".join(parts) + " (from the end of your turn)"
