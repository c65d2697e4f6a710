"""Logging helpers (stdlib only): a JSON formatter, the session-id field, secret redaction,
and escaping of control characters (no forged lines, no terminal escapes).

Named ``logutil`` so that nothing inside the package shadows the stdlib ``logging`` module.
Wired in relay_site/settings.py (``RELAY_LOG_FORMAT=json`` selects the JSON formatter).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

# Every session log line starts "session <uuid>: …" (realtime.edge.consumer); new code may instead
# pass extra={"session_id": …}. Either way the record gets a ``session_id`` attribute.
_SESSION = re.compile(r"^session ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
# A long unbroken base64 run is audio (or a token), never something an operator needs to read.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}={0,2}")
REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 8
# What can break a log line or drive a terminal: C0 controls (newline, CR, tab, ESC …), DEL,
# C1 controls (NEL U+0085 …), the Unicode line/paragraph separators, and surrogates (not
# encodable as UTF-8: the handler would fail on them). str.splitlines breaks on no other.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """Control characters as visible escapes (``\\n``, ``\\x1b``, ``\\u2028``); other text,
    non-ASCII letters included, unchanged. Idempotent."""
    return _CONTROLS.sub(_escaped, text) if _CONTROLS.search(text) else text


class SessionIdFilter(logging.Filter):
    """Adds ``record.session_id`` (None when the line is not about one session)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "session_id", None) is None:
            match = _SESSION.match(record.getMessage())
            record.session_id = match.group(1) if match else None
        elif not isinstance(record.session_id, str):
            record.session_id = str(record.session_id)
        return True


def configured_secrets() -> list[str]:
    """The secret values this process knows, longest first (read at call time: tests and the
    serve command may swap the configuration)."""
    from django.conf import settings

    from realtime.ops import runtime

    values: list[str | None] = list(runtime.current().config.secrets)
    values.append(getattr(settings, "SECRET_KEY", None))
    for database in getattr(settings, "DATABASES", {}).values():
        values.append(database.get("PASSWORD"))
    secrets = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(secrets, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    for secret in configured_secrets() if secrets is None else secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _BASE64_RUN.sub(lambda m: f"[base64 {len(m.group())} chars]", text)


class RedactFilter(logging.Filter):
    """Belt and braces: a configured secret or a base64 blob never reaches a log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = configured_secrets()
        message = record.getMessage()
        cleaned = redact(message, secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, secrets)
        return True


class DaphneNoticeFilter(logging.Filter):
    """Drops daphne's start-up notice that HTTP/2 is not enabled: the relay serves HTTP/1.1
    and WebSockets, and the notice's advice (install Twisted's http2 and tls extras) is not
    something to act on (tests/cli/test_serve_logs.py fails if daphne rewords it)."""

    NOTICE = "HTTP/2 support not enabled"

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.NOTICE)


class EscapeFilter(logging.Filter):
    """Every log line is one line: a value someone else controls (a request path, a username,
    a header) cannot forge lines or send terminal escapes, whatever logged it (ours, Django's
    ``Not Found: <path>``) and in either format. Escapes the merged message; a traceback keeps
    its line breaks (its other control characters are escaped)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = escape_controls(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = "\n".join(map(escape_controls, record.exc_text.split("\n")))
        return True


PROBE_PATHS = ("/healthz", "/readyz")


class ProbeResponseFilter(logging.Filter):
    """Drops Django's per-request line for the probes (``Service Unavailable: /readyz`` at
    ERROR every few seconds while a dependency is down): the probe's answer says it, and
    ``realtime.ops.health`` logs when a check starts and stops failing."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        return not (record.name == "django.request" and getattr(request, "path", "") in PROBE_PATHS)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, session_id, and exc if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": escape_controls(record.getMessage()),  # also without EscapeFilter
        }
        session_id = getattr(record, "session_id", None)
        if session_id is not None:
            entry["session_id"] = str(session_id)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)
