"""The GPT-Live adapter: what it derives from GPT-Live's events, and what it sends."""

from __future__ import annotations

import base64
import json
import math
import struct
import time

import pytest

from realtime.kernel import endings
from realtime.kernel.config import load_config
from realtime.kernel.events import (
    AudioDelta,
    AudioDone,
    InputTranscript,
    InputTranscriptDelta,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    ToolCall,
    ToolTurnEnded,
    UpstreamEnded,
    UpstreamError,
    UpstreamFrames,
    UsageReport,
)
from realtime.tools import load_tools
from realtime.upstream import Unsupported
from realtime.upstream.clients import UpstreamClients
from realtime.upstream.live import LiveAdapter
from realtime.upstream.live_session import session_start
from realtime.upstream.live_turns import ANSWER_GAP_S, USER_GAP_S
from realtime.upstream.speech import SpeechDetector

LIVE = load_config({"RELAY_UPSTREAM_API": "live"})


def frame(**event) -> str:
    return json.dumps(event)


def audio(pcm: bytes) -> str:
    return frame(type="session.output_audio.delta", delta=base64.b64encode(pcm).decode())


def said(text: str, start_ms: int) -> str:
    return frame(
        type="session.output_transcript.delta", delta=text, start_ms=start_ms, end_ms=start_ms + 200
    )


def heard(text: str, start_ms: int) -> str:
    return frame(
        type="session.input_transcript.delta", delta=text, start_ms=start_ms, end_ms=start_ms + 200
    )


def tone(ms: int, amplitude: int = 8000) -> bytes:
    n = ms * 24
    return b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * 220 * i / 24000)))
        for i in range(n)
    )


@pytest.fixture
def adapter() -> LiveAdapter:
    return LiveAdapter(LIVE, UpstreamClients())


def test_an_answer_is_the_output_between_two_pauses(adapter):
    out = adapter.translate(said("Hello", 1000), now=10.0)
    assert out == [ResponseStarted("live_r1"), TextDelta("live_a1-0", "Hello")]
    assert adapter.translate(audio(b"\x01\x00" * 480), now=10.1) == [
        AudioDelta("live_a1", 0, b"\x01\x00" * 480)
    ]
    assert adapter.deadline() == pytest.approx(10.1 + ANSWER_GAP_S)
    assert adapter.tick(10.5) == []  # not yet a pause
    assert adapter.tick(10.1 + ANSWER_GAP_S) == [
        AudioDone("live_a1-0"),
        TextDone("live_a1-0"),
        ResponseDone("live_r1", "completed", None),
    ]
    # The next output is another answer, with an item of its own.
    assert adapter.translate(said("Again", 5000), now=20.0)[0] == ResponseStarted("live_r2")


def test_an_answer_after_a_pause_starts_at_its_first_word(adapter):
    """GPT-Live's output transcript runs on across answers (" The …"); an answer's text does
    not start with the space that joined it to the previous one, and only spaces is no text."""
    adapter.translate(said("One moment.", 0), now=1.0)
    adapter.tick(1.0 + ANSWER_GAP_S)
    out = adapter.translate(said(" ", 2000), now=5.0)
    assert out == [ResponseStarted("live_r2")]
    assert adapter.translate(said(" The time", 2200), now=5.1) == [
        TextDelta("live_a2-0", "The time")
    ]
    assert adapter.translate(said(" is noon.", 2400), now=5.2) == [
        TextDelta("live_a2-0", " is noon.")
    ]


def test_the_users_words_become_deltas_then_one_transcription(adapter):
    out = adapter.translate(heard("what", 100), now=1.0)
    # No audio went through the relay's detector: the first words start the speech.
    assert out == [SpeechStarted(), InputTranscriptDelta("live_u1", "what")]
    assert adapter.translate(heard(" time", 300), now=1.2) == [
        InputTranscriptDelta("live_u1", " time")
    ]
    assert adapter.tick(1.2 + USER_GAP_S) == [
        SpeechStopped(),
        InputTranscript("live_u1", "what time"),
    ]


def test_speech_heard_by_the_relay_cuts_the_answer_on_air(adapter):
    woken = []
    adapter.wake = lambda: woken.append(True)
    adapter.translate(said("A long answer", 0), now=1.0)
    adapter.audio_frame(tone(200))  # the user talks over it
    assert woken == [True]
    assert adapter.deadline() == 0.0  # due now
    assert adapter.tick(1.1) == [
        TextDone("live_a1-0"),
        ResponseDone("live_r1", "cancelled", "turn_detected"),
        SpeechStarted(),
    ]
    # Whatever the model says next is a new answer (never dropped as audio of a cut item).
    [started, _] = adapter.translate(said("Sure", 900), now=1.3)
    assert isinstance(started, ResponseStarted) and started.response_id != "live_r1"
    adapter.audio_frame(bytes(960 * 30))  # 600 ms of silence
    assert SpeechStopped() in adapter.tick(1.4)


def test_speech_over_the_answer_is_a_new_utterance_with_a_transcription_of_its_own(adapter):
    """The user speaks, the answer starts, the user talks over it within USER_GAP_S of their
    last words (an ordinary barge-in). The client got speech_stopped, then a second
    speech_started: each of the two utterances gets its own transcription, with its own
    words and item id (as on the Realtime API), never both run together under the first."""
    adapter.wake = lambda: None
    events = []
    adapter.audio_frame(tone(400))  # the relay's detector: speech…
    adapter.audio_frame(bytes(960 * 30))  # …then 600 ms of quiet
    t0 = time.monotonic()  # the detector stamps the utterance with the monotonic clock
    events += adapter.tick(t0)
    assert events == [SpeechStarted(), SpeechStopped()]
    events += adapter.translate(heard("what", 100), now=t0 + 0.1)
    events += adapter.translate(heard(" time", 300), now=t0 + 0.1)
    events += adapter.translate(said("It is noon.", 900), now=t0 + 0.3)  # the answer starts
    adapter.audio_frame(tone(200))  # the user talks over it, 0.4 s after their words
    events += adapter.tick(t0 + 0.5)
    assert ResponseDone("live_r2", "cancelled", "turn_detected") in events
    assert events.count(SpeechStarted()) == 2
    events += adapter.translate(heard("stop", 1500), now=t0 + 1.0)
    adapter.audio_frame(bytes(960 * 30))
    events += adapter.tick(t0 + 1.1)
    events += adapter.tick(t0 + 1.0 + USER_GAP_S + 0.6)
    transcripts = [e for e in events if isinstance(e, InputTranscript)]
    second = [e for e in events if isinstance(e, InputTranscriptDelta) and e.delta == "stop"]
    assert transcripts == [
        InputTranscript("live_u1", "what time"),
        InputTranscript(second[0].item_id, "stop"),
    ]
    assert second[0].item_id != "live_u1"


def test_what_the_user_heard_is_told_to_the_model_as_silent_context(adapter):
    adapter.translate(said("One ", 1000), now=1.0)
    adapter.translate(said("two ", 1300), now=1.1)
    adapter.translate(said("three", 1600), now=1.2)
    [note] = adapter.truncate("live_a1", 0, 400)
    event = json.loads(note)
    assert event["type"] == "session.thinking.append" and event["delegation_id"] is None
    assert "'One two'" in event["content"]
    assert "before hearing any" in json.loads(adapter.truncate("live_a1", 0, 0)[0])["content"]


def test_typed_text_asks_for_a_spoken_reply_and_long_text_is_split(adapter):
    [only] = adapter.user_text('what is "2+2"?')
    event = json.loads(only)
    assert event["type"] == "session.commentary.append" and event["delegation_id"] is None
    assert '"what is \\"2+2\\"?"' in event["content"] and "Reply to it now" in event["content"]
    frames = [json.loads(f) for f in adapter.user_text("x" * 4000)]
    assert [f["type"] for f in frames] == [
        "session.thinking.append",
        "session.thinking.append",
        "session.commentary.append",
    ]
    assert all(len(f["content"]) < 2000 for f in frames)
    assert adapter.request_answer() == [] and adapter.cancel_answer() == []
    with pytest.raises(Unsupported):
        adapter.commit_audio()


def test_delegated_function_calls_become_tool_calls_and_their_turn_ends_with_the_response(adapter):
    call = {
        "type": "response.output_item.done",
        "item": {
            "type": "function_call",
            "call_id": "c1",
            "name": "get_weather",
            "arguments": "{}",
        },
    }
    out = adapter.translate(frame(type="response.event", delegation_id="d1", event=call), 1.0)
    assert out == [ToolCall("c1", "get_weather", "{}")]
    completed = {"type": "response.completed", "response": {"usage": {"input_tokens": 9}}}
    out = adapter.translate(frame(type="response.event", delegation_id="d1", event=completed), 1.1)
    assert ToolTurnEnded(cancelled=False) in out
    assert json.loads(adapter.tool_result("c1", "sunny")[0]) == {
        "type": "response.item.create",
        "item": {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
    }
    assert adapter.continue_after_tools() == ['{"type":"response.create"}']


def test_a_client_delegation_is_declined_at_once(adapter):
    created = frame(
        type="session.delegation.created",
        delegation={"id": "dg1", "target": "client", "type": "delegation"},
    )
    [reply] = adapter.translate(created, 1.0)
    assert isinstance(reply, UpstreamFrames)
    event = json.loads(reply.frames[0])
    assert event["type"] == "session.commentary.append" and event["delegation_id"] == "dg1"


def test_usage_errors_and_closes():
    adapter = LiveAdapter(LIVE, UpstreamClients())
    usage = frame(type="session.usage.updated", usage={"seconds": 42})
    assert adapter.translate(usage, 1.0) == [UsageReport(42)]
    error = frame(
        type="error", error={"type": "invalid_request_error", "code": "x", "message": "m"}
    )
    assert adapter.translate(error, 1.0) == [UpstreamError("x", "m")]
    expired = frame(type="session.closed", reason="expired", usage={"seconds": 3600})
    assert adapter.translate(expired, 1.0) == [
        UpstreamEnded(endings.UPSTREAM_SESSION_EXPIRED, "session_closed_expired")
    ]
    asked = frame(type="session.closed", reason="close_requested", usage={"seconds": 1})
    assert adapter.translate(asked, 1.0) == []


def test_session_start_shape_with_and_without_tools():
    plain = session_start(LIVE, [])["session"]
    assert plain["model"] == "gpt-live-1"
    assert plain["audio"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "output": {"voice": "alloy"},
    }
    assert plain["delegation"] == {"type": "responses", "responses": {"model": "gpt-5-mini"}}
    tools = load_tools("examples").live_tools()
    with_tools = session_start(LIVE, tools)["session"]["delegation"]["responses"]
    assert {t["name"] for t in with_tools["tools"]} == {
        "get_current_time",
        "add_note",
        "list_notes",
    }
    client = load_config({"RELAY_UPSTREAM_API": "live", "RELAY_LIVE_DELEGATION": "client"})
    assert session_start(client, tools)["session"]["delegation"] == {"type": "client"}


def test_the_speech_detector_needs_sustained_sound_and_then_silence():
    detector = SpeechDetector(threshold=0.5, silence_ms=500)
    assert detector.feed(tone(40)) is None  # two loud windows: a click, not speech
    assert detector.feed(bytes(960)) is None
    assert detector.feed(tone(100)) is True
    assert detector.feed(bytes(960 * 20)) is None  # 400 ms of silence
    assert detector.feed(bytes(960 * 5)) is False
    quiet = SpeechDetector(threshold=0.5, silence_ms=500)
    assert quiet.feed(tone(500, amplitude=50)) is None  # below the -40 dBFS gate


def test_live_refuses_realtime_only_settings_by_name():
    from realtime.kernel.config import ConfigError

    for name, value in [
        ("RELAY_TURN_DETECTION", "none"),
        ("RELAY_OUTPUT_MODALITIES", "text"),
        ("AZURE_OPENAI_API_VERSION", "2025-04-01-preview"),
    ]:
        env = {"RELAY_UPSTREAM_API": "live", name: value}
        if name.startswith("AZURE"):
            env |= {
                "AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com",
                "AZURE_OPENAI_DEPLOYMENT": "d",
            }
        with pytest.raises(ConfigError, match=name):
            load_config(env)


def test_a_phone_session_asks_for_mulaw_both_ways_and_hears_speech_in_it():
    from realtime_simulator.live.codec import AudioFormat, encode_output

    phone = LIVE.replace(audio_format="pcmu")
    assert session_start(phone, [])["session"]["audio"]["format"] == {
        "type": "audio/pcmu",
        "rate": 8000,
    }
    detector = SpeechDetector(threshold=0.5, silence_ms=500, audio_format="pcmu")
    ulaw = AudioFormat("audio/pcmu", 8000)
    assert detector.feed(encode_output(ulaw, tone(40))) is None  # a click
    assert detector.feed(encode_output(ulaw, bytes(960))) is None
    assert detector.feed(encode_output(ulaw, tone(100))) is True  # 160 bytes = 20 ms
    assert detector.feed(encode_output(ulaw, bytes(960 * 25))) is False
    quiet = SpeechDetector(threshold=0.5, silence_ms=500, audio_format="pcmu")
    assert quiet.feed(encode_output(ulaw, tone(500, amplitude=50))) is None
