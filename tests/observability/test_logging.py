"""Session logs: every record carries the session id; no key, no base64 audio; JSON format."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import sys
from collections.abc import Iterator

import pytest

from realtime.ops.logs import (
    JsonFormatter,
    RedactFilter,
    SessionIdFilter,
    configured_secrets,
    redact,
)
from tests.relay.conftest import Client, configure, wav_pcm

SECRET = "sk-test-" + "Zr8pQ2vX9mK4nL7wT1yU5eB3"  # split: not a real key
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{120,}")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The ``realtime`` loggers written as the JSON format would write them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SessionIdFilter())
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("realtime")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("relay_config")
async def test_a_full_session_logs_its_id_on_every_line_and_no_key_or_audio(
    simulator, settings, json_log
):
    simulator.api_key = SECRET  # the simulator checks the relay's key like the real service
    configure(api_key=SECRET)
    client = Client()
    await client.connect()
    session_id = (await client.until(action="session_info"))["session_id"]
    pcm = wav_pcm("hello_24k.wav") + bytes(48000)
    await client.send_audio(pcm)
    await client.until(action="response_done")
    # Something that would leak if anything logged it raw: the key and a chunk of audio.
    logging.getLogger("realtime.session").warning(
        "session %s: debugging %s %s", session_id, SECRET, base64.b64encode(pcm[:3000]).decode()
    )
    await client.close()

    records = lines(json_log)
    session = [r for r in records if r["logger"] == "realtime.session"]
    messages = [str(r["message"]) for r in session]
    assert any("client connected" in m for m in messages)
    assert any("live on" in m for m in messages)
    assert any("closed;" in m for m in messages)
    assert all(r["session_id"] == session_id for r in session)
    text = json_log.getvalue()
    assert SECRET not in text
    assert not BASE64_RUN.search(text)
    assert "[redacted]" in text and "[base64 4000 chars]" in text


def test_the_json_format_has_the_documented_fields_and_an_exception():
    record = logging.LogRecord("realtime.session", logging.ERROR, __file__, 1, "boom", None, None)
    record.session_id = "0b7e2f0a-0000-4000-8000-000000000000"
    try:
        raise ValueError("bad")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert set(entry) == {"ts", "level", "logger", "message", "session_id", "exc"}
    assert entry["level"] == "ERROR" and entry["message"] == "boom"
    assert entry["ts"].endswith("+00:00") and "ValueError: bad" in entry["exc"]


def test_session_ids_come_from_the_message_or_from_extra():
    sid = "4f1c3a52-7d0e-4b8a-9c61-2e5f0a9b8c7d"
    from_message = logging.LogRecord("x", logging.INFO, "", 1, "session %s: hi", (sid,), None)
    SessionIdFilter().filter(from_message)
    assert from_message.session_id == sid
    other = logging.LogRecord("x", logging.INFO, "", 1, "worker started", None, None)
    SessionIdFilter().filter(other)
    assert other.session_id is None


def test_secrets_in_exception_text_are_redacted_too():
    configure(api_key=SECRET)
    try:
        raise RuntimeError(f"upstream said no to {SECRET}")
    except RuntimeError:
        record = logging.LogRecord("realtime", logging.ERROR, "", 1, "failed", None, sys.exc_info())
    RedactFilter().filter(record)
    assert SECRET not in (record.exc_text or "") and "[redacted]" in (record.exc_text or "")


def test_the_metrics_token_is_a_secret_but_short_values_are_not():
    configure(metrics_token="metrics-token-0123456789")
    assert "metrics-token-0123456789" in configured_secrets()
    configure(metrics_token="abc")
    assert "abc" not in configured_secrets()
    assert redact("abc and metrics-token-0123456789", ["metrics-token-0123456789"]) == (
        "abc and [redacted]"
    )


def test_the_console_handler_is_wired_with_both_filters():
    handler = logging.getLogger("realtime").handlers[0]
    kinds = {type(f) for f in handler.filters}
    assert {SessionIdFilter, RedactFilter} <= kinds
