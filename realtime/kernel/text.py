"""Which text the relay accepts: every string is valid Unicode that any sink can take.

Two kinds of character pass JSON's parser yet break what comes after it:

- a **lone surrogate** (``"\\udfff"`` in JSON: valid JSON, but no UTF-8 form): encoding it for
  the upstream's socket, the client's socket, SQLite or PostgreSQL raises
  ``UnicodeEncodeError``;
- **NUL** (``"\\u0000"``): PostgreSQL refuses it in ``text`` and ``jsonb`` (the whole insert
  fails).

Text from outside is checked once, where it enters (``find_invalid``): a client's messages in
``realtime.edge.protocol`` (refused with ``invalid_field``), the model's tool arguments in
``realtime.tools.runner`` (``invalid_arguments`` to the model). Text the relay stores but did
not check at an edge (what the upstream said) is cleaned before it is written
(``clean``/``clean_json``: each such character becomes U+FFFD). Pure code: no I/O, no Django.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REPLACEMENT = "\ufffd"
_INVALID = re.compile("[\x00\ud800-\udfff]")


def problem(text: str) -> str | None:
    """What is wrong with this string (the first bad character), or None when it is valid.
    Never quotes the character itself: a message holding it would break like the text."""
    found = _INVALID.search(text)
    if found is None:
        return None
    char = found.group()
    what = "a NUL character" if char == "\x00" else "a lone UTF-16 surrogate"
    return f"{what} (U+{ord(char):04X}) at position {found.start()}"


def find_invalid(value: Any) -> tuple[str, str] | None:
    """The first string in a JSON value (keys included) that is not valid text:
    ``(where, problem)``, e.g. ``("items[2].name", "a NUL character (U+0000) at position 3")``.
    Iterative: as deep as the JSON parser let the value be."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            found = problem(item)
            if found is not None:
                return where or "value", found
        elif isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                key_problem = problem(key) if isinstance(key, str) else None
                if key_problem is not None:
                    return (where or "object") + " (a key)", key_problem
                stack.append((f"{where}.{key}" if where else key, child))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", child) for i, child in reversed(list(enumerate(item))))
    return None


def may_hold_invalid(json_text: str) -> bool:
    """Can parsing this JSON text (already known to encode as UTF-8) yield invalid text?
    Only a ``\\u`` escape can: raw NUL is not valid JSON and a raw surrogate does not
    encode. Lets the common frame skip ``find_invalid``."""
    return "\\u" in json_text


def clean(text: str) -> str:
    """The text with each lone surrogate and NUL replaced by U+FFFD."""
    return _INVALID.sub(REPLACEMENT, text) if _INVALID.search(text) else text


def clean_json(value: Any) -> Any:
    """A JSON value (dicts, lists, strings, numbers…) with every string cleaned, keys included."""
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, Mapping):
        return {clean(str(key)): clean_json(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [clean_json(child) for child in value]
    return value
