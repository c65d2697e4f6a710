"""The pure translation core: client messages, upstream events, coalescing, truncation."""

from __future__ import annotations

import base64
import json

import pytest

from realtime import protocol
from realtime.config import load_config

GA = load_config({})


def test_canonical_messages_are_byte_compatible():
    """Greeting, speech_started, text_delta, text_done and transcription match the family."""
    tr = protocol.Translator()
    assert protocol.control("connected", greeting="Hi") == (
        '{"type":"control","action":"connected","greeting":"Hi"}'
    )
    out = tr.translate({"type": "input_audio_buffer.speech_started", "item_id": "i1"}, 0.0)
    assert out.to_client == ['{"type":"control","action":"speech_started"}']
    out = tr.translate(
        {"type": "response.output_text.delta", "item_id": "it", "content_index": 2, "delta": "é"},
        0.0,
    )
    assert out.to_client == ['{"type":"text_delta","id":"it-2","delta":"é"}']
    out = tr.translate({"type": "response.audio_transcript.done", "item_id": "it"}, 0.0)
    assert out.to_client == ['{"type":"control","action":"text_done","id":"it-0"}']
    out = tr.translate(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "u1",
            "content_index": 0,
            "transcript": "hello",
        },
        0.0,
    )
    assert out.to_client == ['{"type":"transcription","id":"u1","text":"hello"}']


@pytest.mark.parametrize(
    "kind",
    [
        "response.output_text.delta",
        "response.text.delta",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
    ],
)
def test_text_deltas_of_both_dialects_become_text_delta(kind):
    out = protocol.Translator().translate(
        {"type": kind, "item_id": "x", "content_index": 0, "delta": "d"}, 0.0
    )
    assert json.loads(out.to_client[0]) == {"type": "text_delta", "id": "x-0", "delta": "d"}


@pytest.mark.parametrize("kind", ["response.output_audio.delta", "response.audio.delta"])
def test_audio_delta_is_announced_once_then_sent_as_binary(kind):
    tr = protocol.Translator()
    pcm = b"\x01\x02" * 480
    event = {
        "type": kind,
        "item_id": "a",
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }
    first = tr.translate(event, 1.0).to_client
    second = tr.translate(event, 1.01).to_client
    assert json.loads(first[0]) == {
        "type": "control",
        "action": "audio_start",
        "id": "a-0",
        "item_id": "a",
        "content_index": 0,
    }
    assert first[1] == pcm
    assert second == [pcm]


def test_barge_in_estimates_what_was_played():
    """1 s sent, 0.4 s elapsed since the first frame → truncate at 400 ms."""
    tr = protocol.Translator()
    delta = base64.b64encode(bytes(48000)).decode()
    tr.translate({"type": "response.output_audio.delta", "item_id": "a", "delta": delta}, 10.0)
    out = tr.translate({"type": "input_audio_buffer.speech_started"}, 10.4)
    assert out.interruption == protocol.Interruption("a", 0, 1000, 400)
    assert protocol.truncate_event(out.interruption, None) == {
        "type": "conversation.item.truncate",
        "item_id": "a",
        "content_index": 0,
        "audio_end_ms": 400,
    }
    # The client's exact figure wins, but never beyond what was sent.
    assert protocol.truncate_event(out.interruption, 250)["audio_end_ms"] == 250
    assert protocol.truncate_event(out.interruption, 5000)["audio_end_ms"] == 1000


def test_barge_in_with_nothing_heard_deletes_the_item():
    cut = protocol.Interruption("a", 0, sent_ms=800, estimated_played_ms=0)
    assert protocol.truncate_event(cut, None) == {
        "type": "conversation.item.delete",
        "item_id": "a",
    }


def test_no_interruption_when_everything_sent_was_played():
    tr = protocol.Translator()
    delta = base64.b64encode(bytes(4800)).decode()  # 100 ms
    tr.translate({"type": "response.output_audio.delta", "item_id": "a", "delta": delta}, 0.0)
    assert tr.translate({"type": "input_audio_buffer.speech_started"}, 5.0).interruption is None


def test_audio_of_a_cut_item_is_not_forwarded():
    tr = protocol.Translator()
    delta = base64.b64encode(bytes(48000)).decode()
    event = {"type": "response.output_audio.delta", "item_id": "a", "delta": delta}
    tr.translate(event, 0.0)
    assert tr.translate({"type": "input_audio_buffer.speech_started"}, 0.1).interruption
    assert tr.translate(event, 0.2).to_client == []


def test_response_done_reports_status_and_usage():
    tr = protocol.Translator()
    tr.translate({"type": "response.created", "response": {"id": "r1"}}, 0.0)
    assert tr.active_response_id == "r1"
    out = tr.translate(
        {
            "type": "response.done",
            "response": {
                "id": "r1",
                "status": "cancelled",
                "status_details": {"type": "cancelled", "reason": "turn_detected"},
                "usage": {
                    "input_tokens": 10,
                    "output_tokens": 5,
                    "input_token_details": {
                        "audio_tokens": 7,
                        "text_tokens": 3,
                        "cached_tokens": 2,
                    },
                    "output_token_details": {"audio_tokens": 4, "text_tokens": 1},
                },
            },
        },
        0.0,
    )
    assert tr.active_response_id is None
    assert json.loads(out.to_client[0]) == {
        "type": "control",
        "action": "response_done",
        "id": "r1",
        "status": "cancelled",
        "reason": "turn_detected",
        "usage": {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
    }
    assert out.usage == protocol.Usage(10, 5, 3, 7, 2, 1, 4)


def test_upstream_error_and_failed_transcription_reach_the_client():
    tr = protocol.Translator()
    out = tr.translate(
        {"type": "error", "error": {"code": "oops", "message": "bad thing", "type": "x"}}, 0.0
    )
    assert json.loads(out.to_client[0]) == {
        "type": "error",
        "code": "oops",
        "message": "bad thing",
        "fatal": False,
    }
    out = tr.translate(
        {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": "u",
            "error": {"message": "unintelligible"},
        },
        0.0,
    )
    assert json.loads(out.to_client[0])["code"] == "transcription_failed"


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


def test_coalescer_joins_small_frames_and_never_splits_a_sample():
    co = protocol.AudioCoalescer(flush_bytes=960, max_bytes=10_000)
    out = [co.feed(b"\x01" * 255) for _ in range(4)]
    assert out[:3] == [None, None, None]
    assert out[3] is not None and len(out[3]) == 1020 and len(out[3]) % 2 == 0
    assert co.feed(b"\x01\x02\x03") is None
    assert co.drain() == b"\x01\x02"  # the odd third byte waits for its partner
    assert co.feed(b"\x04") is None
    assert co.drain() == b"\x03\x04"


def test_coalescer_is_bounded():
    co = protocol.AudioCoalescer(flush_bytes=100_000, max_bytes=1000)
    co.feed(bytes(800))
    co.feed(bytes(800))
    assert len(co) == 1000
    assert co.dropped_bytes == 600


def test_audio_append_is_valid_json():
    event = json.loads(protocol.audio_append(b"\x00\x01\x02\x03"))
    assert event == {"type": "input_audio_buffer.append", "audio": "AAECAw=="}


def test_session_update_shapes():
    ga = protocol.session_update(GA, "ga")
    assert ga["session"]["type"] == "realtime"
    assert ga["session"]["audio"]["input"]["transcription"] == {"model": "whisper-1"}
    assert ga["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    beta = protocol.session_update(GA, "beta")
    assert "type" not in beta["session"] and beta["session"]["input_audio_format"] == "pcm16"
    manual = load_config({"RELAY_TURN_DETECTION": "none", "RELAY_TRANSCRIPTION_MODEL": "none"})
    ga_manual = protocol.session_update(manual, "ga")["session"]["audio"]["input"]
    assert ga_manual["turn_detection"] is None and ga_manual["transcription"] is None
