"""GPT-Live's answers and user turns derived from pauses (upstream/live_turns.py): a pure
object, driven here with times and words alone (no socket, no JSON, no audio)."""

from __future__ import annotations

import pytest

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
)
from realtime.upstream.live_turns import ANSWER_GAP_S, TRAILING_WORDS_S, USER_GAP_S, LiveTurns

PCM = b"\x01\x00" * 240


@pytest.fixture
def turns() -> LiveTurns:
    return LiveTurns()


def test_an_answer_ends_after_a_pause_in_the_output(turns):
    assert turns.deadline() is None  # nothing under way: nothing is ever due
    assert turns.output_transcript("Hello", 1000, now=10.0) == [
        ResponseStarted("live_r1"),
        TextDelta("live_a1-0", "Hello"),
    ]
    assert turns.output_audio(PCM, now=10.5) == [AudioDelta("live_a1", 0, PCM)]
    assert turns.deadline() == pytest.approx(10.5 + ANSWER_GAP_S)  # output moves the end
    assert turns.tick(10.5 + ANSWER_GAP_S / 2) == []
    assert turns.tick(10.5 + ANSWER_GAP_S) == [
        AudioDone("live_a1-0"),
        TextDone("live_a1-0"),
        ResponseDone("live_r1", "completed", None),
    ]
    assert turns.deadline() is None
    assert turns.output_audio(PCM, now=20.0)[0] == ResponseStarted("live_r2")  # the next one


def test_speech_heard_over_an_answer_ends_it_at_once(turns):
    turns.output_audio(PCM, now=1.0)
    turns.speech_changed(True, now=1.2)
    assert turns.deadline() == 0.0  # due now: the session's reader is woken for it
    assert turns.tick(1.2) == [
        AudioDone("live_a1-0"),
        ResponseDone("live_r1", "cancelled", "turn_detected"),
        SpeechStarted(),
    ]
    assert turns.input_transcript("stop", now=1.4) == [InputTranscriptDelta("live_u2", "stop")]
    turns.speech_changed(False, now=1.6)
    assert turns.tick(1.6) == [SpeechStopped()]
    assert turns.deadline() == pytest.approx(1.6 + USER_GAP_S)  # words may still come
    assert turns.tick(1.6 + USER_GAP_S) == [InputTranscript("live_u2", "stop")]


def test_quiet_words_the_detector_missed_start_and_end_the_speech(turns):
    assert turns.input_transcript("hi", now=5.0) == [
        SpeechStarted(),
        InputTranscriptDelta("live_u1", "hi"),
    ]
    turns.input_transcript(" there", now=5.5)
    assert turns.tick(5.5 + USER_GAP_S) == [SpeechStopped(), InputTranscript("live_u1", "hi there")]


def test_late_words_of_a_turn_just_ended_start_no_new_speech(turns):
    turns.input_transcript("hello", now=1.0)
    turns.tick(1.0 + USER_GAP_S)
    late = 1.0 + USER_GAP_S + TRAILING_WORDS_S / 2
    assert turns.input_transcript("again", now=late) == [InputTranscriptDelta("live_u2", "again")]


def test_the_model_answering_closes_the_users_turn_first(turns):
    turns.speech_changed(True, now=1.0)
    turns.input_transcript("what time is it", now=1.5)
    turns.speech_changed(False, now=2.0)
    turns.tick(2.0)
    assert turns.output_transcript("It is noon.", 0, now=2.2) == [
        InputTranscript("live_u1", "what time is it"),
        ResponseStarted("live_r2"),
        TextDelta("live_a2-0", "It is noon."),
    ]


def test_a_sound_without_words_is_no_utterance(turns):
    turns.speech_changed(True, now=1.0)
    turns.speech_changed(False, now=1.3)
    assert turns.tick(1.3) == [SpeechStarted(), SpeechStopped()]
    assert turns.tick(1.3 + USER_GAP_S) == []  # nothing to transcribe


def test_an_answer_the_session_cut_ends_now_and_the_next_output_is_a_new_one(turns):
    turns.output_audio(PCM, now=1.0)
    assert turns.answer_cut("live_a9") is False  # not the answer on air
    assert turns.answer_cut("live_a1") is True
    assert turns.tick(1.1) == [
        AudioDone("live_a1-0"),
        ResponseDone("live_r1", "cancelled", "client_cancelled"),
    ]
    assert turns.output_audio(PCM, now=1.2) == [
        ResponseStarted("live_r2"),
        AudioDelta("live_a2", 0, PCM),  # played, not dropped as audio of the cut item
    ]


def test_what_was_heard_of_an_answer_follows_its_transcript_times(turns):
    turns.output_transcript("One,", 5000, now=1.0)
    turns.output_transcript(" two,", 5600, now=1.1)
    turns.output_transcript(" three.", 6400, now=1.2)
    assert turns.heard_text("live_a1", 700) == "One, two,"
    assert turns.heard_text("live_a1", 0) == ""
    assert turns.heard_text("live_a7", 700) == ""  # an answer it does not know
