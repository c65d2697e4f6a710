"""Issue 25, finding 9: a value someone else controls (a request path, a username) cannot forge
log lines or send terminal escapes, in the plain and the JSON log formats.

The handler tested is the one settings.LOGGING configures for the ``realtime`` and ``django``
loggers (its filters are the real wiring), writing into a buffer instead of stderr.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError
from django.test import Client

from realtime.ops.logs import JsonFormatter, escape_controls
from tests.records.conftest import make_session

pytestmark = pytest.mark.django_db

FORGED = "FORGED 2026-01-01 00:00:00,000 INFO realtime.session admin logged out"
# %0a and %0d: line breaks; %1b[2J%1b[H: clear the operator's terminal; U+2028: a line break
# to many viewers; a lone surrogate: not even encodable.
EVIL_PATH = (
    "/admin/realtime/realtimesession/user/x%0a"
    + FORGED.replace(" ", "%20")
    + "%0d%1b[2J%1b[H%E2%80%A8end/conversations.json"
)
EVIL_NAME = "eve\n" + FORGED + "\x1b[31m\u2028\x85"


@pytest.fixture(params=["plain", "json"])
def log_output(request) -> Iterator[io.StringIO]:
    handlers = logging.getLogger("realtime").handlers  # pytest may add a capture handler
    [handler] = [h for h in handlers if type(h) is logging.StreamHandler]
    assert handler in logging.getLogger("django").handlers  # one console handler for both
    stream = io.StringIO()
    old_stream, old_formatter = handler.setStream(stream), handler.formatter
    if request.param == "json":
        handler.setFormatter(JsonFormatter())
    levels = {name: logging.getLogger(name).level for name in ("realtime", "django")}
    logging.getLogger("realtime").setLevel(logging.INFO)
    try:
        yield stream
    finally:
        handler.setStream(old_stream)
        handler.setFormatter(old_formatter)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def assert_unforged(text: str) -> list[str]:
    """Each line is one record; returns each record's message (JSON decoded)."""
    lines = text.splitlines()
    assert lines, "nothing was logged"
    assert not any(line.startswith("FORGED") for line in lines)
    assert "\x1b" not in text and "\u2028" not in text and "\x85" not in text and "\r" not in text
    if lines[0].startswith("{"):
        messages = [json.loads(line)["message"] for line in lines]
        assert not any(c in m for m in messages for c in "\n\r\x1b\u2028\x85")
        return messages
    return lines


def test_a_request_path_logged_while_the_database_is_down_is_escaped(log_output, monkeypatch):
    from django.contrib.sessions.backends.db import SessionStore

    def down(self):
        raise OperationalError("connection refused")

    monkeypatch.setattr(SessionStore, "load", down)
    client = Client()
    client.cookies["sessionid"] = "x" * 32
    response = client.get(EVIL_PATH)
    assert response.status_code == 503
    lines = assert_unforged(log_output.getvalue())
    [line] = [line for line in lines if "database unavailable" in line]
    assert "\\n" + FORGED in line and "\\x1b[2J" in line and "\\u2028end" in line


def test_the_export_audit_line_escapes_the_staff_username(log_output):
    user = get_user_model().objects.create_superuser(EVIL_NAME, "e@example.com", "pw")
    client = Client()
    client.force_login(user)
    session = make_session()
    url = f"/admin/realtime/realtimesession/{session.pk}/conversation.json"
    assert client.get(url).status_code == 200
    lines = assert_unforged(log_output.getvalue())
    [line] = [line for line in lines if "exported" in line]
    assert "eve\\n" + FORGED + "\\x1b[31m\\u2028\\x85 exported" in line


def test_escaping_keeps_text_readable_and_is_idempotent():
    assert escape_controls("plain é ü 中文 \\n") == "plain é ü 中文 \\n"
    escaped = escape_controls("a\nb\r\tc\x1b[0m\x7f\x85\u2028\u2029\ud800")
    assert escaped == "a\\nb\\r\\tc\\x1b[0m\\x7f\\x85\\u2028\\u2029\\ud800"
    assert escape_controls(escaped) == escaped


def test_a_username_in_any_message_is_escaped(log_output):
    logging.getLogger("realtime.test").warning("user %s", EVIL_NAME)
    [message] = assert_unforged(log_output.getvalue())
    assert message.endswith("user " + escape_controls(EVIL_NAME))
