"""The Realtime API adapter: upstream events → session events, session settings, commands."""

from __future__ import annotations

import base64
import json

import pytest

from realtime.kernel import endings
from realtime.kernel.config import load_config
from realtime.kernel.events import (
    AudioDelta,
    InputTimeout,
    InputTranscript,
    InputTranscriptDelta,
    InputTranscriptFailed,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    TextDelta,
    TextDone,
    UpstreamEnded,
    UpstreamError,
    Usage,
)
from realtime.upstream.clients import UpstreamClients
from realtime.upstream.realtime import RealtimeAdapter, translate_event
from realtime.upstream.realtime_session import session_update

GA = load_config({})


@pytest.mark.parametrize(
    "kind",
    [
        "response.output_text.delta",
        "response.text.delta",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
    ],
)
def test_text_deltas_of_both_dialects(kind):
    event = {"type": kind, "item_id": "x", "content_index": 2, "delta": "d"}
    assert translate_event(event) == TextDelta("x-2", "d")
    done = {"type": kind.replace("delta", "done"), "item_id": "x"}
    assert translate_event(done) == TextDone("x-0")


@pytest.mark.parametrize("kind", ["response.output_audio.delta", "response.audio.delta"])
def test_audio_deltas_are_decoded(kind):
    pcm = b"\x01\x02" * 480
    event = {"type": kind, "item_id": "a", "delta": base64.b64encode(pcm).decode()}
    assert translate_event(event) == AudioDelta("a", 0, pcm)
    assert translate_event({"type": kind, "item_id": "a", "delta": "not base64!"}) is None


def test_turn_and_transcription_events():
    assert translate_event({"type": "input_audio_buffer.speech_started"}) == SpeechStarted()
    assert translate_event(
        {"type": "conversation.item.input_audio_transcription.delta", "item_id": "u", "delta": "he"}
    ) == InputTranscriptDelta("u", "he")
    assert translate_event(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "u",
            "transcript": "hello",
        }
    ) == InputTranscript("u", "hello")
    assert translate_event(
        {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": "u",
            "error": {"message": "unintelligible"},
        }
    ) == InputTranscriptFailed("unintelligible")
    assert translate_event({"type": "input_audio_buffer.timeout_triggered"}) == InputTimeout()
    assert translate_event({"type": "rate_limits.updated"}) is None


def test_response_lifecycle_with_status_and_usage():
    assert translate_event({"type": "response.created", "response": {"id": "r1"}}) == (
        ResponseStarted("r1")
    )
    done = translate_event(
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
        }
    )
    assert done == ResponseDone("r1", "cancelled", "turn_detected", Usage(10, 5, 3, 7, 2, 1, 4))


def test_errors_are_non_fatal_except_expiry():
    error = {"type": "error", "error": {"code": "oops", "message": "bad thing", "type": "x"}}
    assert translate_event(error) == UpstreamError("oops", "bad thing")
    expired = {"type": "error", "error": {"code": "session_expired", "message": "60 min"}}
    assert translate_event(expired) == UpstreamEnded(
        endings.UPSTREAM_SESSION_EXPIRED, "session_expired"
    )


def test_commands_become_realtime_events():
    adapter = RealtimeAdapter(GA, UpstreamClients())
    assert json.loads(adapter.audio_frame(b"\x00\x01\x02\x03")) == {
        "type": "input_audio_buffer.append",
        "audio": "AAECAw==",
    }
    [create] = adapter.user_text("hi")
    assert json.loads(create) == {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "hi"}],
        },
    }
    assert [json.loads(f)["type"] for f in adapter.request_answer()] == ["response.create"]
    assert [json.loads(f)["type"] for f in adapter.cancel_answer()] == ["response.cancel"]
    assert [json.loads(f)["type"] for f in adapter.commit_audio()] == ["input_audio_buffer.commit"]


def test_a_cut_answer_is_truncated_at_what_was_heard_or_deleted_when_nothing_was():
    adapter = RealtimeAdapter(GA, UpstreamClients())
    assert json.loads(adapter.truncate("a", 0, 400)[0]) == {
        "type": "conversation.item.truncate",
        "item_id": "a",
        "content_index": 0,
        "audio_end_ms": 400,
    }
    assert json.loads(adapter.truncate("a", 0, 0)[0]) == {
        "type": "conversation.item.delete",
        "item_id": "a",
    }


def test_session_update_shapes():
    ga = session_update(GA, "ga")
    assert ga["session"]["type"] == "realtime"
    assert ga["session"]["audio"]["input"]["transcription"] == {"model": "whisper-1"}
    assert ga["session"]["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 500
    assert "noise_reduction" not in ga["session"]["audio"]["input"]  # off unless configured
    assert "truncation" not in ga["session"] and "prompt" not in ga["session"]
    beta = session_update(GA, "beta")
    assert "type" not in beta["session"] and beta["session"]["input_audio_format"] == "pcm16"
    manual = load_config({"RELAY_TURN_DETECTION": "none", "RELAY_TRANSCRIPTION_MODEL": "none"})
    ga_manual = session_update(manual, "ga")["session"]["audio"]["input"]
    assert ga_manual["turn_detection"] is None and ga_manual["transcription"] is None
    phone = GA.replace(audio_format="pcmu")  # a phone line's session: G.711 μ-law both ways
    audio = session_update(phone, "ga")["session"]["audio"]
    assert audio["input"]["format"] == audio["output"]["format"] == {"type": "audio/pcmu"}
    beta_phone = session_update(phone, "beta")["session"]
    assert beta_phone["input_audio_format"] == beta_phone["output_audio_format"] == "g711_ulaw"


def test_the_upstream_proxy_follows_the_environment_and_is_looked_up_once(monkeypatch):
    """A relay behind an egress proxy reaches the upstream through it (``https_proxy``),
    ``no_proxy`` hosts directly; the environment is read once per upstream, not per connect."""
    from realtime.kernel.config import load_config
    from realtime.upstream import clients

    monkeypatch.setenv("https_proxy", "http://egress.example:3128")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    clients.upstream_proxy.cache_clear()
    try:
        openai = load_config({"OPENAI_API_KEY": "sk-x"})
        simulator = load_config({"REALTIME_SIMULATOR_URL": "ws://127.0.0.1:9"})
        assert clients.websocket_options(openai)["proxy"] == "http://egress.example:3128"
        assert clients.websocket_options(simulator)["proxy"] is None  # no_proxy
        monkeypatch.setenv("https_proxy", "http://changed.example:1")
        assert clients.websocket_options(openai)["proxy"] == "http://egress.example:3128"
    finally:
        clients.upstream_proxy.cache_clear()
