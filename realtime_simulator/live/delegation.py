"""Delegation: when the simulated voice model hands work to a backend.

Deterministic conventions (the real model decides for itself):
- Responses delegation: the user's words (transcript, or typed text sent as commentary) name
  one or more configured function tools (case-insensitive; `get_weather` or `get weather`),
  or contain one of a tool's example phrases (`planning.example_phrases`).
  Each named tool becomes one function call; its arguments are the first JSON object after
  the name in the words, else the first anywhere, else `{}`.
- Client delegation: the words contain one of CLIENT_CUES.

Responses flow (as integrators observe it; see docs/simulator.md): a delegated response
streams its function calls and *completes* with them unanswered. The client sends one
`response.item.create` (function_call_output) per call, then `response.create`; a partial
batch is refused. The continuation is a new response under the same delegation, whose text
the voice then speaks. With `parallel_tool_calls: false` each response carries one call.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import events as ev
from ..planning import example_phrases, phrase_pattern
from . import events as lev
from .schema import LiveError, invalid, missing

if TYPE_CHECKING:
    from .session import LiveSession

CLIENT_CUES = ("look up", "check", "search", "delegate")
ACKNOWLEDGEMENT = "One moment, let me check that."


@dataclass
class Call:
    call_id: str
    name: str
    arguments: str
    output: str | None = None


@dataclass
class Chain:
    """One responses delegation: its calls and the response its continuation follows."""

    delegation_id: str | None
    words: str
    todo: list[tuple[str, str]]  # (tool name, arguments) not yet called
    last_response_id: str | None = None
    calls: list[Call] = field(default_factory=list)  # called, in the latest response
    answered: list[Call] = field(default_factory=list)  # earlier responses' calls


def _first_json_object(text: str, start: int = 0) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    position = text.find("{", start)
    while position != -1:
        try:
            value, _ = decoder.raw_decode(text, position)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        position = text.find("{", position + 1)
    return None


def _position(name: str, words: str, phrases: list[str]) -> int:
    """Where a tool is named in the words (as is, or with spaces for underscores, anywhere),
    or one of its example phrases appears (word by word), or -1."""
    lowered = words.lower()
    found = [lowered.find(n) for n in {name.lower(), name.lower().replace("_", " ")}]
    for phrase in phrases:
        match = re.search(rf"(?<!\w){phrase_pattern(phrase)}(?!\w)", words, re.IGNORECASE)
        found.append(match.start() if match else -1)
    return min((i for i in found if i >= 0), default=-1)


class Delegations:
    def __init__(self, session: LiveSession) -> None:
        self.session = session
        self.client_ids: set[str] = set()
        self.chain: Chain | None = None
        self.running = False
        self.context: list[dict[str, Any]] = []  # other items given to the backend

    @property
    def config(self) -> dict[str, Any]:
        assert self.session.resource is not None
        return self.session.resource["delegation"]

    # ---- deciding to delegate -------------------------------------------------------------

    async def maybe_delegate(self, words: str, offset_ms: int) -> bool:
        if self.config["type"] == "client":
            if not any(cue in words.lower() for cue in CLIENT_CUES):
                return False
            delegation_id = ev.new_id("dlg")
            self.client_ids.add(delegation_id)
            await self.session.send(lev.delegation_created(delegation_id, "client", offset_ms))
            self.session.acknowledge(self.config["acknowledgement_delay_ms"])
            return True
        todo = self._tool_calls(words)
        if todo is None or self.chain is not None or self.running:
            return False  # nothing named, or one delegated task at a time
        delegation_id = ev.new_id("dlg")
        self.chain = Chain(delegation_id, words, todo)
        stream = lev.ResponseStream(self.config["responses"], None)
        created = lev.delegation_created(delegation_id, "responses", offset_ms, stream.id)
        await self.session.send(created)
        self.session.acknowledge(self.config["acknowledgement_delay_ms"])
        self._run(stream)
        return True

    def _tool_calls(self, words: str) -> list[tuple[str, str]] | None:
        """The calls a delegation makes, or None when no function tool is named."""
        responses = self.config["responses"]
        functions = [t for t in responses.get("tools") or [] if t.get("type") == "function"]
        found = [(_position(t["name"], words, example_phrases(t)), t["name"]) for t in functions]
        named = sorted((i, n) for i, n in found if i >= 0)
        if not named:
            return None
        choice = responses.get("tool_choice")
        if choice == "none":
            return []
        if isinstance(choice, dict) and choice.get("type") == "function":
            forced = [(i, n) for i, n in named if n == choice.get("name")]
            named = forced or [(0, str(choice.get("name")))]
        calls = []
        for position, name in named:
            found = _first_json_object(words, position)
            if found is None:
                found = _first_json_object(words) or {}
            calls.append((name, json.dumps(found)))
        return calls

    # ---- client commands ------------------------------------------------------------------

    def check_append(self, delegation_id: Any) -> None:
        if delegation_id is None:
            return
        if self.config["type"] == "responses":
            raise invalid(
                "delegation_id", "Non-null delegation_id is not accepted with Responses delegation."
            )
        if delegation_id not in self.client_ids:
            raise invalid("delegation_id", f"Unknown delegation: {delegation_id!r}.")

    def _require_responses(self) -> None:
        if self.config["type"] != "responses":
            raise invalid("type", "This command requires Responses delegation.")

    def item_create(self, item: dict[str, Any]) -> None:
        self._require_responses()
        if item.get("type") != "function_call_output":
            self.context.append(item)
            return
        if not item.get("call_id"):
            raise missing("item.call_id")
        call = self._open_call(item["call_id"])
        output = item["output"]
        if not isinstance(output, str):  # a list of content parts: keep their text
            output = " ".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
        call.output = output

    def _open_call(self, call_id: str) -> Call:
        for call in self.chain.calls if self.chain else []:
            if call.call_id == call_id:
                if call.output is not None:
                    raise invalid("item.call_id", f"Call {call_id!r} already has an output.")
                return call
        raise invalid("item.call_id", f"No function call {call_id!r} is waiting for output.")

    def response_create(self) -> None:
        self._require_responses()
        if self.running:
            raise LiveError("response_in_progress", "A delegated response is still running.")
        if self.chain is None:  # the application asks the backend itself: no delegation
            self.chain = Chain(None, self._context_text() or "Nothing to add.", [])
        unanswered = [c.call_id for c in self.chain.calls if c.output is None]
        if unanswered:
            raise LiveError(
                "function_call_output_missing",
                "Send a function_call_output for every call before response.create; "
                f"waiting for: {', '.join(unanswered)}.",
            )
        self.chain.answered += self.chain.calls
        self.chain.calls = []
        self._run(lev.ResponseStream(self.config["responses"], self.chain.last_response_id))

    def _context_text(self) -> str:
        texts = []
        for item in self.context:
            content = item.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts += [str(p["text"]) for p in content if isinstance(p, dict) and "text" in p]
        self.context.clear()
        return " ".join(texts)

    # ---- streaming a backend response -----------------------------------------------------

    def _run(self, stream: lev.ResponseStream) -> None:
        assert self.chain is not None
        self.running = True
        self.session._spawn(self._stream(self.chain, stream))

    async def _stream(self, chain: Chain, stream: lev.ResponseStream) -> None:
        try:
            snapshot = stream.snapshot("in_progress")
            await self._emit(chain, stream, "response.created", response=snapshot)
            await self._emit(chain, stream, "response.in_progress", response=snapshot)
            parallel = self.config["responses"].get("parallel_tool_calls") is not False
            batch = chain.todo if parallel else chain.todo[:1]
            chain.todo = chain.todo[len(batch) :]
            if batch:
                produced = await self._calls(chain, stream, batch)
            else:
                text = self._answer(chain)
                produced = await self._message(chain, stream, text)
                self.chain = None
                self.session.say(text, "delegation_result")
            usage = lev.response_usage(lev.text_tokens(chain.words) + 20, produced)
            completed = stream.snapshot("completed", usage)
            await self._emit(chain, stream, "response.completed", response=completed)
            chain.last_response_id = stream.id
        finally:
            self.running = False

    async def _emit(
        self, chain: Chain, stream: lev.ResponseStream, type_: str, **fields: Any
    ) -> None:
        nested = stream.next(type_, **fields)
        await self.session.send(
            lev.event("response.event", delegation_id=chain.delegation_id, event=nested)
        )

    async def _calls(
        self, chain: Chain, stream: lev.ResponseStream, batch: list[tuple[str, str]]
    ) -> int:
        for index, (name, arguments) in enumerate(batch):
            item_id, call_id = ev.new_id("fc"), ev.new_id("call")
            chain.calls.append(Call(call_id, name, arguments))
            common = {"item_id": item_id, "output_index": index}
            added = lev.function_call_item(item_id, call_id, name, "", "in_progress")
            await self._emit(
                chain, stream, "response.output_item.added", output_index=index, item=added
            )
            half = len(arguments) // 2
            for piece in (arguments[:half], arguments[half:]):
                delta_type = "response.function_call_arguments.delta"
                await self._emit(chain, stream, delta_type, **common, delta=piece)
            done_type = "response.function_call_arguments.done"
            await self._emit(chain, stream, done_type, **common, arguments=arguments)
            done = lev.function_call_item(item_id, call_id, name, arguments, "completed")
            await self._emit(
                chain, stream, "response.output_item.done", output_index=index, item=done
            )
            await asyncio.sleep(0)
        return sum(lev.text_tokens(arguments) for _, arguments in batch)

    def _answer(self, chain: Chain) -> str:
        if not chain.answered:
            return f"Here is what I know about that: {chain.words}"
        return " ".join(f"The {c.name} function returned {c.output}." for c in chain.answered)

    async def _message(self, chain: Chain, stream: lev.ResponseStream, text: str) -> int:
        item_id = ev.new_id("msg")
        common = {"item_id": item_id, "output_index": 0, "content_index": 0}
        started = lev.message_item(item_id, "in_progress", None)
        await self._emit(chain, stream, "response.output_item.added", output_index=0, item=started)
        part = lev.output_text("")
        await self._emit(chain, stream, "response.content_part.added", **common, part=part)
        for index, word in enumerate(text.split(" ")):
            delta = word if index == 0 else " " + word
            await self._emit(
                chain, stream, "response.output_text.delta", **common, delta=delta, logprobs=[]
            )
        await self._emit(
            chain, stream, "response.output_text.done", **common, text=text, logprobs=[]
        )
        part = lev.output_text(text)
        await self._emit(chain, stream, "response.content_part.done", **common, part=part)
        finished = lev.message_item(item_id, "completed", text)
        await self._emit(chain, stream, "response.output_item.done", output_index=0, item=finished)
        return lev.text_tokens(text)
