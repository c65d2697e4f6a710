"""GPT-Live session configuration: checking `session.start` / `session.update` and resolving
the `SessionResource` the server reports (server defaults filled in)."""

from __future__ import annotations

import copy
from typing import Any

from openai.types.live.session_config import SessionConfig
from openai.types.live.session_update_config import SessionUpdateConfig

from .. import events as ev
from .schema import check_model, invalid

DEFAULT_VOICE = "marin"  # the default voice per SessionConfig.audio.output.voice
DEFAULT_FORMAT = {"type": "audio/pcm", "rate": 24000}
MAX_INPUT_ITEMS = 128
MAX_INPUT_TOKENS = 8192  # the default rendered-token cap of the startup history


def _default_ack_delay(delegation_type: str) -> int:
    # ClientDelegation.acknowledgement_delay_ms: 400 for Decisions sessions, else 0.
    return 400 if delegation_type == "decisions" else 0


def resolve_start(config: Any, expires_at: int) -> dict[str, Any]:
    """The SessionResource for a `session.start` config, or raise LiveError."""
    check_model(config, SessionConfig, "session")
    if not config["model"].strip():
        raise invalid("session.model", "Invalid value for 'session.model': must not be empty.")
    fmt = (config.get("audio") or {}).get("format")
    if fmt and fmt["type"] != "audio/pcm" and fmt["rate"] != 8000:
        raise invalid(
            "session.audio.format.rate", f"Invalid value: {fmt['rate']}. G.711 audio uses 8000."
        )
    items = config.get("input") or []
    if len(items) > MAX_INPUT_ITEMS:
        raise invalid("session.input", f"At most {MAX_INPUT_ITEMS} startup messages are allowed.")
    for index, item in enumerate(items):
        if len(item["content"]) != 1:
            raise invalid(
                f"session.input[{index}].content", "Each startup message takes exactly one part."
            )
    tokens = sum(ev.text_tokens(item["content"][0]["text"]) for item in items)
    if tokens > MAX_INPUT_TOKENS:
        raise invalid(
            "session.input",
            f"The startup messages take {tokens} tokens; at most {MAX_INPUT_TOKENS} are allowed.",
        )
    delegation = _resolve_delegation(config.get("delegation"), "session.delegation")
    audio = config.get("audio") or {}
    resource: dict[str, Any] = {
        "id": ev.new_id("sess"),
        "status": "active",
        "expires_at": expires_at,
        "model": config["model"],
        "instructions": config.get("instructions"),
        "audio": {
            "format": copy.deepcopy(audio.get("format") or DEFAULT_FORMAT),
            "output": {"voice": copy.deepcopy((audio.get("output") or {}).get("voice"))},
        },
        "delegation": delegation,
        "input": copy.deepcopy(items),
        "store": bool(config.get("store", False)),
        "triggers": copy.deepcopy(config.get("triggers") or []),
    }
    if resource["audio"]["output"]["voice"] is None:
        resource["audio"]["output"]["voice"] = DEFAULT_VOICE
    for optional in ("safety_identifier", "client"):
        if config.get(optional) is not None:
            resource[optional] = copy.deepcopy(config[optional])
    return resource


def _resolve_delegation(value: dict[str, Any] | None, param: str) -> dict[str, Any]:
    if value is None:
        return {"type": "client", "acknowledgement_delay_ms": 0}
    if value["type"] == "decisions":
        raise invalid(f"{param}.type", "Decisions delegation is not simulated (offline simulator).")
    resolved = copy.deepcopy(value)
    resolved.setdefault("acknowledgement_delay_ms", _default_ack_delay(value["type"]))
    if resolved["acknowledgement_delay_ms"] < 0:
        raise invalid(f"{param}.acknowledgement_delay_ms", "Must be zero or more milliseconds.")
    return resolved


def merge_update(current: dict[str, Any], update: Any) -> dict[str, Any]:
    """The SessionResource after a `session.update`, or raise LiveError. Only delegation
    settings and triggers can change; the delegation type cannot."""
    check_model(update, SessionUpdateConfig, "session")
    new = copy.deepcopy(current)
    if update.get("triggers") is not None:
        new["triggers"] = copy.deepcopy(update["triggers"])
    change = update.get("delegation")
    if change is None:
        return new
    if change["type"] != new["delegation"]["type"]:
        raise invalid(
            "session.delegation.type",
            f"The delegation type cannot change after startup (it is "
            f"'{new['delegation']['type']}').",
        )
    if change["type"] == "decisions":  # unreachable: start refuses decisions delegation
        raise invalid("session.delegation.type", "Decisions delegation is not simulated.")
    delegation = new["delegation"]
    if change.get("acknowledgement_delay_ms") is not None:
        if change["acknowledgement_delay_ms"] < 0:
            raise invalid(
                "session.delegation.acknowledgement_delay_ms", "Must be zero or more milliseconds."
            )
        delegation["acknowledgement_delay_ms"] = change["acknowledgement_delay_ms"]
    for key, value in (change.get("responses") or {}).items():
        if value is not None:
            delegation["responses"][key] = copy.deepcopy(value)
    return new
