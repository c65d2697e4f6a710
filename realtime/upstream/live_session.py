"""What the relay sends to GPT-Live: ``session.start`` built from the relay's config (and the
session's tools), and the appends that carry typed text, interruptions, instructions and tool
outputs (GPT-Live has no conversation items: context goes in as ``session.*.append``)."""

from __future__ import annotations

import json
from typing import Any

from realtime.kernel.config import RelayConfig
from realtime.kernel.history import EMPTY, Message, Snapshot

PCM_24K = {"type": "audio/pcm", "rate": 24000}  # the browser protocol's audio, both ways
PCMU_8K = {"type": "audio/pcmu", "rate": 8000}  # a phone line's (G.711 μ-law), both ways
FORMATS = {"pcm16": PCM_24K, "pcmu": PCMU_8K}
APPEND_CHARS = 1800  # ~450 tokens: an append event takes at most 500
CONTINUE_DELEGATION = '{"type":"response.create"}'  # continues the delegated response
# session.start's ``input`` (text history): at most 128 messages and a rendered-token cap
# (8,192 by default). The relay counts ~4 characters a token plus a few per message and
# keeps a margin for the service's own rendering.
INPUT_MESSAGES = 128
INPUT_TOKENS = 7_000
MESSAGE_TOKENS = 4


def session_start(
    config: RelayConfig, tools: list[dict[str, Any]], history: Snapshot = EMPTY
) -> dict[str, Any]:
    session: dict[str, Any] = {
        "model": config.model,
        "instructions": config.instructions,
        "audio": {"format": FORMATS[config.audio_format], "output": {"voice": config.voice}},
        "delegation": _delegation(config, tools),
    }
    if history:
        session["input"] = history_input(history)
    return {"type": "session.start", "session": session}


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4 + MESSAGE_TOKENS


def history_input(history: Snapshot) -> list[dict[str, Any]]:
    """The conversation so far as GPT-Live's startup history: text messages only (system
    messages and tool calls become developer messages), the most recent part that fits
    ``INPUT_MESSAGES`` and ``INPUT_TOKENS``. When older messages are left out (here or by the
    history's own bound), a developer message says how many, first."""
    rendered = [_initial(item) for item in history.items]
    kept: list[dict[str, Any]] = []
    budget = INPUT_TOKENS - _tokens(_note(history.dropped + len(rendered)))  # room for a note
    for message in reversed(rendered):
        text = message["content"][0]["text"]
        cost = _tokens(text)
        if len(kept) >= INPUT_MESSAGES - 1 or cost > budget:
            if not kept and budget > MESSAGE_TOKENS:  # the newest alone is too long: its start
                message["content"][0]["text"] = text[: (budget - MESSAGE_TOKENS) * 4 - 1] + "…"
                kept.append(message)
            break
        kept.append(message)
        budget -= cost
    kept.reverse()
    left_out = history.dropped + len(rendered) - len(kept)
    if left_out:
        kept.insert(0, _developer(_note(left_out)))
    return kept


def _note(left_out: int) -> str:
    return (
        f"This conversation continues from an earlier session; its {left_out} oldest "
        "messages are not included here."
    )


def _initial(item: Any) -> dict[str, Any]:
    if not isinstance(item, Message):  # a tool call with its output
        return _developer(
            f"Earlier you called the tool {item.name} with {item.arguments}; "
            f"it returned {item.output}."
        )
    if item.role == "system":
        return _developer(item.text)
    if item.role == "user":
        content = {"type": "input_text", "text": item.text}
        return {"type": "message", "role": "user", "content": [content]}
    message: dict[str, Any] = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": item.text}],
    }
    if not item.complete:
        message["status"] = "incomplete"
    return message


def _developer(text: str) -> dict[str, Any]:
    content = {"type": "input_text", "text": text}
    return {"type": "message", "role": "developer", "content": [content]}


def _delegation(config: RelayConfig, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """Responses delegation runs the relay's tools (and the backend's reasoning); client
    delegation only when asked for (this relay runs no agent of its own: it declines)."""
    if config.live_delegation == "client":
        return {"type": "client"}
    responses: dict[str, Any] = {"model": config.live_responses_model}
    if tools:
        responses["tools"] = tools
    return {"type": "responses", "responses": responses}


def to_json(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def append(kind: str, content: str, delegation_id: Any = None) -> str:
    """``session.<kind>.append`` (thinking: silent context; commentary: speakable, asks for a
    reply; instructions)."""
    event = {"type": f"session.{kind}.append", "content": content}
    event["delegation_id"] = delegation_id  # required, nullable
    return to_json(event)


def typed_text(text: str) -> list[str]:
    """Typed text as speakable context asking for a reply (commentary: see docs); a long
    message goes in parts, all but the last as silent context."""
    chunks = [text[i : i + APPEND_CHARS] for i in range(0, len(text), APPEND_CHARS)] or [""]
    frames = [
        append("thinking", f"The user is typing a long message (part {n} of {len(chunks)}): {c}")
        for n, c in enumerate(chunks[:-1], start=1)
    ]
    last = json.dumps(chunks[-1], ensure_ascii=False)
    part = f" (the last part of {len(chunks)})" if len(chunks) > 1 else ""
    frames.append(
        append("commentary", f"The user typed{part}: {last}. Reply to it now; do not read it back.")
    )
    return frames


def interrupted(heard: str) -> str:
    """GPT-Live has no truncate: tell the model, silently, what the user heard of its answer."""
    heard = heard.strip()
    if heard:
        note = f"The user interrupted you; of your last answer they heard only: {heard!r}."
    else:
        note = "The user interrupted you before hearing any of your last answer."
    return append("thinking", note)


def function_output(call_id: str, output: str) -> str:
    item = {"type": "function_call_output", "call_id": call_id, "output": output}
    return to_json({"type": "response.item.create", "item": item})
