"""What the simulated model answers: a reply text or function calls (pure: no I/O, no state).

Tool-call convention (what the relay's server-side tools rely on):
- a configured function tool is *mentioned* when its name appears in the user's words (typed
  text, the recognised utterance, or the transcript) as a whole word, case-insensitively,
  either as written (``get_current_time``) or with underscores spoken as spaces
  (``get current time``), or when one of its *example phrases* appears: the double-quoted
  phrases on a line of its description that starts ``Examples:`` (``Examples: "what time is
  it", "what's the time"``; the relay's ``@tool(examples=[...])`` writes that line), matched
  word by word, case-insensitively, whatever punctuation or spacing lies between the words;
  text inside a JSON object does not count;
- every mentioned tool is called once, in order of first mention, all in one response
  (parallel calls) unless ``parallel_tool_calls`` is false (then only the first);
- a call's arguments are the first JSON object in its stretch of the words (from the tool's
  first mention to the next mention of another tool; the first call's stretch starts at the
  beginning of the words), else ``{}``;
- ``tool_choice``: ``none`` never calls, ``required`` calls the first tool when none is
  mentioned, ``{"type": "function", "name": N}`` calls only N;
- after ``function_call_output`` items the reply quotes every output verbatim.

Recall convention (so a test can tell whether history reached a session): when the user's
words ask "what did I say" (``RECALL``, any case) and name no tool, the reply quotes every
earlier user message of the conversation verbatim, in order: ``Earlier you said: "A", then
"B". This is the simulator speaking.`` (``You have not said anything before this.`` when there
is none). ``reply_text`` does not replace it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

GREETING = "Hello from the simulator. How can I help?"
SPEAKING = "This is the simulator speaking."
RECALL = re.compile(r"\bwhat did i (?:just )?say\b", re.IGNORECASE)
NOTHING_SAID = "You have not said anything before this."


def asks_recall(words: str) -> bool:
    return RECALL.search(words) is not None


def recall_reply(earlier: Sequence[str]) -> str:
    """The reply to "what did I say": the earlier user messages, verbatim and in order."""
    if not earlier:
        return f"{NOTHING_SAID} {SPEAKING}"
    quoted = ", then ".join(f'"{text}"' for text in earlier)
    return f"Earlier you said: {quoted}. {SPEAKING}"


def user_words(items: Sequence[dict[str, Any]]) -> list[str]:
    """What the user said in these items, in order: typed text, else the known utterance
    heard, else the transcript (audio nobody could make out has no words)."""
    words = []
    for item in items:
        if item.get("type") == "message" and item.get("role") == "user":
            text = item_text(item) or heard_words(item)
            if text:
                words.append(text)
    return words


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: str  # JSON text


@dataclass
class Plan:
    kind: str  # "message" | "function_call"
    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)


def json_objects(text: str) -> list[tuple[int, int, dict[str, Any]]]:
    """Every top-level JSON object in the text as (start, end, value)."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, dict[str, Any]]] = []
    pos = text.find("{")
    while pos != -1:
        try:
            value, end = decoder.raw_decode(text, pos)
        except ValueError:
            pos = text.find("{", pos + 1)
            continue
        if isinstance(value, dict):
            found.append((pos, end, value))
            pos = text.find("{", end)
        else:
            pos = text.find("{", pos + 1)
    return found


_EXAMPLES_LINE = re.compile(r"^[ \t]*Examples:(.*)$", re.MULTILINE | re.IGNORECASE)
_QUOTED = re.compile(r'"([^"\n]+)"')


def example_phrases(tool: Mapping[str, Any]) -> list[str]:
    """A tool's example phrases: the double-quoted phrases on its description's lines that
    start ``Examples:`` (the convention the relay's ``@tool(examples=...)`` follows)."""
    description = tool.get("description")
    if not isinstance(description, str):
        return []
    return [
        phrase.strip()
        for line in _EXAMPLES_LINE.findall(description)
        for phrase in _QUOTED.findall(line)
        if re.search(r"\w", phrase)
    ]


def phrase_pattern(phrase: str) -> str:
    """A regular expression for a phrase, word by word (any non-word characters between)."""
    return r"\W+".join(re.escape(word) for word in re.findall(r"\w+", phrase))


def _name_pattern(name: str, phrases: Sequence[str] = ()) -> re.Pattern[str]:
    forms = {name, name.replace("_", " ")}
    alternatives = [
        re.escape(form).replace(r"\ ", r"\s+") for form in sorted(forms, key=len, reverse=True)
    ]
    alternatives += [phrase_pattern(phrase) for phrase in phrases if re.search(r"\w", phrase)]
    return re.compile(rf"(?<!\w)(?:{'|'.join(alternatives)})(?!\w)", re.IGNORECASE)


def mentions(
    text: str, names: Sequence[str], phrases: Mapping[str, Sequence[str]] | None = None
) -> list[tuple[int, str]]:
    """(position, tool name) of each mention (its name or one of its example phrases), in
    order; the longest wins where they overlap."""
    masked = list(text)
    for start, end, _ in json_objects(text):
        masked[start:end] = " " * (end - start)
    searchable = "".join(masked)
    phrases = phrases or {}
    hits = [
        (m.start(), m.end(), name)
        for name in names
        for m in _name_pattern(name, phrases.get(name, ())).finditer(searchable)
    ]
    hits.sort(key=lambda hit: (hit[0], hit[0] - hit[1]))
    kept: list[tuple[int, str]] = []
    last_end = -1
    for start, end, name in hits:
        if start >= last_end:
            kept.append((start, name))
            last_end = end
    return kept


def tool_calls(
    text: str,
    names: Sequence[str],
    choice: Any,
    parallel: bool = True,
    phrases: Mapping[str, Sequence[str]] | None = None,
) -> list[ToolCall]:
    if not names or choice == "none":
        return []
    hits = mentions(text, names, phrases)
    order: list[tuple[int, str]] = []
    for position, name in hits:
        if all(name != seen for _, seen in order):
            order.append((position, name))
    if isinstance(choice, dict) and choice.get("type", "function") == "function":
        forced = str(choice.get("name"))
        if forced not in names:
            return []
        order = [(p, n) for p, n in order if n == forced] or [(0, forced)]
    elif choice == "required" and not order:
        order = [(0, names[0])]
    if not parallel:
        order = order[:1]
    objects = json_objects(text)
    calls = []
    for index, (position, name) in enumerate(order):
        start = 0 if index == 0 else position
        end = next((p for p, n in hits if p > position and n != name), len(text))
        arguments = next((value for s, _, value in objects if start <= s < end), {})
        calls.append(
            ToolCall(name, json.dumps(arguments, separators=(",", ":"), ensure_ascii=False))
        )
    return calls


def item_text(item: dict[str, Any]) -> str | None:
    for part in item.get("content") or []:
        if part.get("type") in ("input_text", "text", "output_text") and part.get("text"):
            return str(part["text"])
    return None


def heard_words(item: dict[str, Any]) -> str | None:
    """What the model understood of a user audio item: a known utterance or the transcript."""
    if item.get("_heard"):
        return str(item["_heard"])
    return next(
        (str(p["transcript"]) for p in item.get("content") or [] if p.get("transcript")), None
    )


def prompt_note(prompt: Any) -> str:
    if not isinstance(prompt, dict) or not prompt.get("id"):
        return ""
    version = f" version {prompt['version']}" if prompt.get("version") else ""
    return f" Using stored prompt {prompt['id']}{version}."


def _tool_outputs_reply(context: list[dict[str, Any]], history: list[dict[str, Any]]) -> str:
    outputs: list[dict[str, Any]] = []
    for item in reversed(context):
        if item.get("type") == "function_call_output":
            outputs.append(item)
        elif item.get("type") != "function_call":
            break
    sentences = []
    for output in reversed(outputs):
        call = next((i for i in history if i.get("call_id") == output.get("call_id")
                     and i.get("type") == "function_call"), None)  # fmt: skip
        name = call.get("name") if call else "function"
        sentences.append(f"The {name} function returned {output.get('output', '')}.")
    return " ".join(sentences) + " That is the answer."


def plan_response(
    context: list[dict[str, Any]],
    history: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]],
    choice: Any,
    parallel: bool,
    reply_text: str | None,
    prompt: Any,
) -> Plan:
    """``context``: the items the response sees; ``history``: the whole conversation."""
    last = next(
        (i for i in reversed(context)
         if i.get("type") == "function_call_output" or i.get("role") == "user"),
        None,
    )  # fmt: skip
    note = prompt_note(prompt)
    if last is None:
        return Plan("message", reply_text or GREETING + note)
    if last.get("type") == "function_call_output":
        return Plan("message", _tool_outputs_reply(context, history) + note)
    if last.get("_idle_timeout"):
        seconds = last["_idle_timeout"] / 1000
        unit = "second" if seconds == 1 else "seconds"
        return Plan(
            "message",
            reply_text or f"Are you still there? I have not heard anything for {seconds:g} "
            f"{unit}.{note}",
        )  # fmt: skip
    text = item_text(last)
    if text is None:
        words = heard_words(last)
        seconds = last.get("_audio_ms", 0) / 1000
        if last.get("_heard"):
            reply = f"You said: {str(last['_heard']).rstrip('.?!')}. {SPEAKING}"
        else:
            reply = f"I heard {seconds:.2f} seconds of speech. {SPEAKING}"
        text = words or ""
    else:
        reply = f"You said: {text}. {SPEAKING}"
    functions = [t for t in tools if t.get("type", "function") == "function" and t.get("name")]
    names = [str(t["name"]) for t in functions]
    phrases = {str(t["name"]): example_phrases(t) for t in functions}
    calls = tool_calls(text, names, choice, parallel, phrases)
    if calls:
        return Plan("function_call", calls=calls)
    if asks_recall(text):
        before = next((i for i, h in enumerate(history) if h is last), len(history))
        return Plan("message", recall_reply(user_words(history[:before])) + note)
    return Plan("message", reply_text or reply + note)
