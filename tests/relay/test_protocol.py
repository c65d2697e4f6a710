"""The browser protocol: commands parsed from client frames, the session's client events encoded
for the browser."""

from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest

from realtime.edge import protocol
from realtime.guards.budgets import Budget, Limits, Usage
from realtime.kernel import events
from realtime.kernel.latency import Latency
from realtime.session import client_events as client
from realtime.tools import ToolNotice

RESETS = datetime(2026, 11, 28, tzinfo=UTC)
SECONDS_LEFT = Budget(
    Limits(connects_per_minute=20, daily_seconds=3600, daily_tokens=0), Usage(100, 5), RESETS
)
TOKENS_LEFT = Budget(
    Limits(connects_per_minute=0, daily_seconds=0, daily_tokens=5000), Usage(100, 6000), RESETS
)
TOKENS = events.Usage(input_tokens=12, output_tokens=30, input_audio_tokens=9)

# Every client event kind, and the exact text frame the browser gets for it: the bytes the
# session built itself with protocol.py's message builders before the events were neutral.
ENCODED = [
    (
        client.Connected('Héllo "you"'),
        '{"type":"control","action":"connected","greeting":"Héllo \\"you\\""}',
    ),
    (
        client.SessionInfo("0f0e", "Simulator (gpt-realtime)", "realtime", "server_vad"),
        '{"type":"control","action":"session_info","session_id":"0f0e",'
        '"provider":"Simulator (gpt-realtime)","api":"realtime","turn_detection":"server_vad",'
        '"resume_token":null,"resumed":false}',
    ),
    (
        client.SessionInfo("0f0e", "Azure OpenAI (gpt-realtime)", "live", "model", SECONDS_LEFT),
        '{"type":"control","action":"session_info","session_id":"0f0e",'
        '"provider":"Azure OpenAI (gpt-realtime)","api":"live","turn_detection":"model",'
        '"budget":{"seconds_left":3500,"tokens_left":null,"connects_per_minute":20,'
        '"resets_at":"2026-11-28T00:00:00Z"},"resume_token":null,"resumed":false}',
    ),
    (
        client.SessionInfo("0f0e", "x", "realtime", "none", TOKENS_LEFT, "t0k:s1g", True),
        '{"type":"control","action":"session_info","session_id":"0f0e","provider":"x",'
        '"api":"realtime","turn_detection":"none","budget":{"seconds_left":null,"tokens_left":0,'
        '"connects_per_minute":null,"resets_at":"2026-11-28T00:00:00Z"},'
        '"resume_token":"t0k:s1g","resumed":true}',
    ),
    (
        client.SessionEnding(60),
        '{"type":"control","action":"session_ending","seconds_left":60}',
    ),
    (
        client.UpstreamRenewed("max_age", 2),
        '{"type":"control","action":"upstream_renewed","reason":"max_age","upstream":2}',
    ),
    (client.UsageUpdate(75), '{"type":"control","action":"usage","seconds":75}'),
    (
        client.Error("busy", "the relay is busy; message not sent"),
        '{"type":"error","code":"busy","message":"the relay is busy; message not sent",'
        '"fatal":false}',
    ),
    (
        client.Error("frame_too_large", "binary frame of 9 bytes exceeds", fatal=True),
        '{"type":"error","code":"frame_too_large","message":"binary frame of 9 bytes exceeds",'
        '"fatal":true}',
    ),
    (client.SpeechStarted(), '{"type":"control","action":"speech_started"}'),
    (client.SpeechStopped(), '{"type":"control","action":"speech_stopped"}'),
    (
        client.TranscriptDelta("item_A", "Sim"),
        '{"type":"transcription_delta","id":"item_A","delta":"Sim"}',
    ),
    (
        client.Transcript("item_A", "Simulated ünïcode"),
        '{"type":"transcription","id":"item_A","text":"Simulated ünïcode"}',
    ),
    (client.InputTimeout(), '{"type":"control","action":"input_timeout"}'),
    (
        client.AnswerStarted("resp_1"),
        '{"type":"control","action":"response_started","id":"resp_1"}',
    ),
    (
        client.AnswerAudioStart("item_B", 1),
        '{"type":"control","action":"audio_start","id":"item_B-1","item_id":"item_B",'
        '"content_index":1}',
    ),
    (
        client.AnswerAudioDone("item_B-0"),
        '{"type":"control","action":"audio_done","id":"item_B-0"}',
    ),
    (
        client.AnswerTextDelta("item_B-0", 'é "q" \n\u2028'),
        '{"type":"text_delta","id":"item_B-0","delta":"é \\"q\\" \\n\u2028"}',
    ),
    (
        client.AnswerTextDone("item_B-0"),
        '{"type":"control","action":"text_done","id":"item_B-0"}',
    ),
    (
        client.AnswerDone("resp_1", "cancelled", "turn_detected", TOKENS),
        '{"type":"control","action":"response_done","id":"resp_1","status":"cancelled",'
        '"reason":"turn_detected","usage":{"input_tokens":12,"output_tokens":30,'
        '"total_tokens":42},"latency_ms":{"first_audio":null,"first_text":null,"relay":null}}',
    ),
    (
        client.AnswerDone("resp_2", "completed", None, events.Usage(), Latency(612, 580, 0.231)),
        '{"type":"control","action":"response_done","id":"resp_2","status":"completed",'
        '"reason":null,"usage":{"input_tokens":0,"output_tokens":0,"total_tokens":0},'
        '"latency_ms":{"first_audio":612,"first_text":580,"relay":0.231}}',
    ),
    (
        client.AnswerTruncated("item_B", 1234),
        '{"type":"control","action":"truncated","item_id":"item_B","audio_end_ms":1234}',
    ),
    (
        ToolNotice("call_1", "get_current_time", "started"),
        '{"type":"tool_call","name":"get_current_time","call_id":"call_1","status":"started"}',
    ),
    (
        ToolNotice(
            "call_1",
            "get_current_time",
            "done",
            arguments={"timezone": "Asia/Tokyo"},
            result={"time": "12:00"},
            duration_ms=12,
        ),
        '{"type":"tool_call","name":"get_current_time","call_id":"call_1","status":"done",'
        '"arguments":{"timezone":"Asia/Tokyo"},"result":{"time":"12:00"}}',
    ),
    (
        ToolNotice("call_2", "add_note", "error", error="timeout", duration_ms=5000),
        '{"type":"tool_call","name":"add_note","call_id":"call_2","status":"error",'
        '"error":"timeout"}',
    ),
]


@pytest.mark.parametrize(("event", "frame"), ENCODED, ids=lambda v: type(v).__name__)
def test_each_client_event_is_the_documented_text_frame_byte_for_byte(event, frame):
    assert protocol.encode(event) == frame


def test_every_kind_of_client_event_has_an_encoding():
    kinds = set(typing.get_args(client.ClientEvent))
    assert kinds == {type(event) for event, _ in ENCODED}  # each pinned above


def test_an_unknown_event_is_refused_rather_than_sent_half_encoded():
    with pytest.raises(KeyError):
        protocol.encode(object())  # type: ignore[arg-type]


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
