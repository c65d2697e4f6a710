"""The client protocol: commands parsed from client frames, messages built for the client."""

from __future__ import annotations

import json

import pytest

from realtime.edge import protocol


def test_canonical_messages_are_byte_compatible():
    """Greeting, speech_started, text_delta, text_done and transcription match the family."""
    assert protocol.control("connected", greeting="Hi") == (
        '{"type":"control","action":"connected","greeting":"Hi"}'
    )
    assert protocol.SPEECH_STARTED == '{"type":"control","action":"speech_started"}'
    assert protocol.text_delta("it-2", "é") == '{"type":"text_delta","id":"it-2","delta":"é"}'
    assert protocol.control("text_done", id="it-0") == (
        '{"type":"control","action":"text_done","id":"it-0"}'
    )
    assert protocol.transcription("u1", "hello") == (
        '{"type":"transcription","id":"u1","text":"hello"}'
    )


def test_extension_messages():
    assert json.loads(protocol.audio_start("a", 0)) == {
        "type": "control",
        "action": "audio_start",
        "id": "a-0",
        "item_id": "a",
        "content_index": 0,
    }
    assert json.loads(protocol.transcription_delta("u1", "hel")) == {
        "type": "transcription_delta",
        "id": "u1",
        "delta": "hel",
    }
    assert json.loads(protocol.error_message("oops", "bad thing")) == {
        "type": "error",
        "code": "oops",
        "message": "bad thing",
        "fatal": False,
    }


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("[1,2]", "invalid_message"),
        ('{"text":"x"}', "invalid_message"),
        ('{"type":"session.update","session":{}}', "unknown_type"),
        ('{"type":"user_message"}', "missing_field"),
        ('{"type":"user_message","text":5}', "missing_field"),
        ('{"type":"user_message","text":"  "}', "invalid_field"),
        ('{"type":"playback","played_ms":3}', "missing_field"),
        ('{"type":"playback","item_id":"a","played_ms":-1}', "invalid_field"),
        ('{"type":"user_message","text":"\udcff"}', "invalid_utf8"),
        ("\udcff", "invalid_utf8"),
    ],
)
def test_bad_client_input_is_named(frame, code):
    with pytest.raises(protocol.ClientProtocolError) as exc:
        protocol.parse_client_text(frame)
    assert exc.value.code == code


def test_client_commands_parse():
    assert protocol.parse_client_text('{"type":"user_message","text":"hi","id":"7"}') == (
        protocol.UserMessage("hi")
    )
    assert protocol.parse_client_text('{"type":"playback","item_id":"a","played_ms":12.7}') == (
        protocol.Playback("a", 12)
    )
    assert protocol.parse_client_text('{"type":"interrupt"}') == protocol.Interrupt()
    assert protocol.parse_client_text(
        '{"type":"interrupt","item_id":"a","played_ms":5}'
    ) == protocol.Interrupt(protocol.Playback("a", 5))
    assert protocol.parse_client_text('{"type":"commit"}') == protocol.Commit()


def test_text_limit_counts_utf8_bytes():
    assert not protocol.utf8_length_over("é" * 10, 20)
    assert protocol.utf8_length_over("é" * 11, 20)
    assert not protocol.utf8_length_over("a" * 20, 20)
