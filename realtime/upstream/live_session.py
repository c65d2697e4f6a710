"""The GPT-Live ``session.start`` built from the relay's config (and the session's tools)."""

from __future__ import annotations

from typing import Any

from realtime.config import RelayConfig

PCM_24K = {"type": "audio/pcm", "rate": 24000}  # the browser protocol's audio, both ways


def session_start(config: RelayConfig, tools: list[dict[str, Any]]) -> dict[str, Any]:
    session: dict[str, Any] = {
        "model": config.model,
        "instructions": config.instructions,
        "audio": {"format": PCM_24K, "output": {"voice": config.voice}},
        "delegation": _delegation(config, tools),
    }
    return {"type": "session.start", "session": session}


def _delegation(config: RelayConfig, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """Responses delegation runs the relay's tools (and the backend's reasoning); client
    delegation only when asked for (this relay runs no agent of its own: it declines)."""
    if config.live_delegation == "client":
        return {"type": "client"}
    responses: dict[str, Any] = {"model": config.live_responses_model}
    if tools:
        responses["tools"] = tools
    return {"type": "responses", "responses": responses}
