"""The simulated input-audio transcript (pure).

- A known utterance (see utterances.py) is transcribed as its table text. Tool names are
  spoken as words ("get current time"), so that is what the transcript says, unless the
  transcription `prompt` lists the name with underscores (``get_current_time``): then the
  transcript spells it that way, as a prompted transcriber would.
- Anything else is "Simulated transcript of X.XX seconds of speech."; with a transcription
  `language` set it ends "... of speech (language: xx)." so tests can see the setting arrive.
  Known utterances keep their text whatever the language (a real transcriber reports what
  was said).
"""

from __future__ import annotations

import re
from typing import Any

_KEYWORD = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+")


def spell_keywords(text: str, prompt: str | None) -> str:
    for keyword in _KEYWORD.findall(prompt or ""):
        spoken = re.escape(keyword.replace("_", " ")).replace(r"\ ", r"\s+")
        text = re.sub(rf"(?<!\w){spoken}(?!\w)", keyword, text, flags=re.IGNORECASE)
    return text


def transcript_text(heard: str | None, duration_ms: int, config: dict[str, Any]) -> str:
    if heard:
        return spell_keywords(heard, config.get("prompt"))
    language = config.get("language")
    suffix = f" (language: {language})" if language else ""
    return f"Simulated transcript of {duration_ms / 1000:.2f} seconds of speech{suffix}."
