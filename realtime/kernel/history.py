"""The conversation as the model knows it, whatever the upstream API.

A session keeps one ``History``: what the user typed and said (final transcripts), what the
assistant answered (its text or audio transcript, cut at what the user heard after a
barge-in), tool calls with their outputs, and system messages, in order. When the relay
renews or recovers the upstream session (``realtime/session/renewal.py``), the new upstream
is given this history (each adapter's ``open(history)`` says how its API takes it).

Bounded: at most ``MAX_ITEMS`` items and ``MAX_CHARS`` characters of text; the oldest items
are dropped first and counted in ``dropped``. One item's text is cut at ``MAX_ITEM_CHARS``.
No audio is kept. Unlike ``conversation.py`` (the stored record, off unless enabled) it
exists in every session, in memory only, and is never written anywhere.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

MAX_ITEMS = 200
MAX_CHARS = 100_000  # ≈ 25,000 tokens of text
MAX_ITEM_CHARS = 8_000


@dataclass(frozen=True, slots=True)
class Message:
    """A message of the conversation: ``complete`` is False for an answer that was cut
    short (a barge-in, or the upstream failing in the middle of it)."""

    role: Literal["user", "assistant", "system"]
    text: str
    complete: bool = True


@dataclass(frozen=True, slots=True)
class ToolExchange:
    """A tool call the model made and the output the relay gave it."""

    call_id: str
    name: str
    arguments: str
    output: str


Item = Message | ToolExchange


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The history at one moment, as a new upstream session is given it: ``dropped`` items
    older than ``items`` were left out by the bound."""

    items: tuple[Item, ...] = ()
    dropped: int = 0

    def __bool__(self) -> bool:
        return bool(self.items)


EMPTY = Snapshot()


def snapshot_to_data(snapshot: Snapshot) -> dict[str, Any]:
    """A snapshot as JSON-able data (a resume keeps it in Redis: realtime/session/continuity.py)."""
    items: list[dict[str, Any]] = []
    for item in snapshot.items:
        if isinstance(item, Message):
            items.append({"role": item.role, "text": item.text, "complete": item.complete})
        else:
            items.append(
                {
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments,
                    "output": item.output,
                }
            )
    return {"items": items, "dropped": snapshot.dropped}


def snapshot_from_data(data: Any) -> Snapshot:
    """The inverse of ``snapshot_to_data``; what does not have the expected shape is left out
    (``ValueError`` for data that is not a snapshot at all)."""
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise ValueError("not a conversation snapshot")
    items: list[Item] = []
    for raw in data["items"]:
        if not isinstance(raw, dict):
            continue
        if raw.get("role") in ("user", "assistant", "system") and isinstance(raw.get("text"), str):
            items.append(Message(raw["role"], _clip(raw["text"]), bool(raw.get("complete", True))))
        elif all(isinstance(raw.get(k), str) for k in ("call_id", "name", "arguments", "output")):
            items.append(
                ToolExchange(
                    raw["call_id"], raw["name"], _clip(raw["arguments"]), _clip(raw["output"])
                )
            )
    dropped = data.get("dropped")
    return Snapshot(tuple(items), dropped if isinstance(dropped, int) and dropped >= 0 else 0)


@dataclass(slots=True)
class _Answer:
    """An assistant answer being received: its parts' text so far, by part id."""

    item_id: str
    parts: dict[str, list[str]] = field(default_factory=dict)
    complete: bool = True
    open_parts: set[str] = field(default_factory=set)

    @property
    def text(self) -> str:
        # An audio answer has one part (its transcript); a text answer one text part.
        return "".join("".join(chunks) for chunks in self.parts.values())


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    arguments: str
    output: str | None = None


_Entry = Message | _Answer | _Call


def _item_of(part_id: str) -> str:
    """``<item_id>-<content_index>`` → ``<item_id>`` (the part ids of ``events.TextDelta``)."""
    item_id, sep, index = part_id.rpartition("-")
    return item_id if sep and index.isdigit() else part_id


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ITEM_CHARS else text[: MAX_ITEM_CHARS - 1] + "…"


class History:
    def __init__(self, *, max_items: int = MAX_ITEMS, max_chars: int = MAX_CHARS) -> None:
        self.max_items = max_items
        self.max_chars = max_chars
        self.dropped = 0  # items left out at the oldest end (bounded)
        self.version = 0  # changes when what ``items()`` gives may have changed
        self._entries: deque[_Entry] = deque()
        self._answers: dict[str, _Answer] = {}  # item id → answer being received
        self._calls: dict[str, _Call] = {}  # call id → call waiting for its output
        self._cut: deque[str] = deque(maxlen=8)  # answers cut short: their late text is not kept

    # ---- what the session records ------------------------------------------------------------

    def user(self, text: str) -> None:
        """A typed message, or the final transcript of a spoken one."""
        if text.strip():
            self._add(Message("user", _clip(text)))

    def system(self, text: str) -> None:
        if text.strip():
            self._add(Message("system", _clip(text)))

    def answer_delta(self, part_id: str, delta: str) -> None:
        item_id = _item_of(part_id)
        answer = self._answers.get(item_id)
        if answer is None:  # its place in the conversation: where it started
            if item_id in self._cut:
                return
            answer = self._answers[item_id] = _Answer(item_id)
            self._add(answer)
        answer.parts.setdefault(part_id, []).append(delta)
        answer.open_parts.add(part_id)

    def answer_done(self, part_id: str) -> None:
        item_id = _item_of(part_id)
        answer = self._answers.get(item_id)
        if answer is not None:
            answer.open_parts.discard(part_id)
            if not answer.open_parts:
                del self._answers[item_id]
        self._trim()

    def answer_heard(self, item_id: str, heard_ms: int, sent_ms: int) -> None:
        """A barge-in cut this answer: the model keeps what the user heard of it. The text
        is cut in the proportion of the audio heard (the wire carries no word timings), at a
        word boundary; nothing heard, nothing kept."""
        answer = next(
            (e for e in self._entries if isinstance(e, _Answer) and e.item_id == item_id), None
        )
        if answer is None:
            return
        self._answers.pop(item_id, None)
        self._cut.append(item_id)
        self.version += 1
        text = answer.text
        if heard_ms <= 0 or not text:
            self._entries.remove(answer)
            return
        if sent_ms > 0 and heard_ms < sent_ms:
            cut = int(len(text) * heard_ms / sent_ms)
            space = text.rfind(" ", 0, cut + 1)
            text = text[: space if space > 0 else cut].rstrip()
        answer.parts = {item_id: [text]}
        answer.open_parts.clear()
        answer.complete = False
        if not text:
            self._entries.remove(answer)

    def answers_cut(self) -> None:
        """The upstream went away: answers still arriving are kept as far as they went
        (marked incomplete), and calls without an output are forgotten."""
        self.version += 1
        for answer in self._answers.values():
            self._cut.append(answer.item_id)
            answer.complete = False
            answer.open_parts.clear()
        self._answers.clear()
        for call in self._calls.values():
            if call in self._entries:
                self._entries.remove(call)
        self._calls.clear()

    def tool_call(self, call_id: str, name: str, arguments: str) -> None:
        call = self._calls[call_id] = _Call(call_id, name, _clip(arguments))
        self._add(call)

    def tool_output(self, call_id: str, output: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is not None:
            call.output = _clip(output)
            self._trim()

    # ---- what a new upstream is given --------------------------------------------------------

    def items(self) -> list[Item]:
        """The conversation so far, oldest first: answers as far as they went, tool calls
        that have their output (a call without one is left out)."""
        out: list[Item] = []
        for entry in self._entries:
            if isinstance(entry, Message):
                out.append(entry)
            elif isinstance(entry, _Answer):
                text = entry.text.strip()
                if text:
                    complete = entry.complete and entry.item_id not in self._answers
                    out.append(Message("assistant", _clip(text), complete))
            elif entry.output is not None:
                out.append(ToolExchange(entry.call_id, entry.name, entry.arguments, entry.output))
        return out

    def snapshot(self) -> Snapshot:
        return Snapshot(tuple(self.items()), self.dropped)

    def restore(self, snapshot: Snapshot) -> None:
        """Start from a conversation kept elsewhere (a resumed session), before anything else
        is recorded."""
        self.dropped = snapshot.dropped
        for item in snapshot.items:
            if isinstance(item, Message):
                self._entries.append(item)
            else:
                self._entries.append(_Call(item.call_id, item.name, item.arguments, item.output))
        self._trim()

    def __len__(self) -> int:
        return len(self._entries)

    # ---- bounds ------------------------------------------------------------------------------

    def _add(self, entry: _Entry) -> None:
        self._entries.append(entry)
        self._trim()

    def _trim(self) -> None:
        self.version += 1
        entries = self._entries
        while len(entries) > self.max_items or (
            len(entries) > 1 and sum(map(_size, entries)) > self.max_chars
        ):
            old = entries.popleft()
            self.dropped += 1
            if isinstance(old, _Answer):
                self._answers.pop(old.item_id, None)
            elif isinstance(old, _Call):
                self._calls.pop(old.call_id, None)


def _size(entry: _Entry) -> int:
    if isinstance(entry, Message):
        return len(entry.text)
    if isinstance(entry, _Answer):
        return sum(len(chunk) for chunks in entry.parts.values() for chunk in chunks)
    return len(entry.arguments) + len(entry.output or "")
