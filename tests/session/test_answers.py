"""The session's answer state (session/answers.py), without a session or a socket."""

from __future__ import annotations

import pytest

from realtime.session.answers import CANCEL_NOT_ACTIVE, Answers


def test_a_request_is_owed_an_answer_until_it_starts_and_ends():
    answers = Answers()
    assert not answers.expecting  # idle: silence is no stall
    assert answers.may_ask_now(one_at_a_time=True)
    answers.asked(now=True)
    assert answers.expecting and answers.awaiting and not answers.wanted
    answers.started("resp_1")
    assert answers.active and not answers.awaiting and answers.expecting
    assert answers.response_id == "resp_1"
    assert answers.done() is False  # nothing else was asked for meanwhile
    assert not answers.expecting


def test_one_at_a_time_a_request_during_an_answer_waits_for_its_end():
    answers = Answers()
    answers.started("resp_1")
    assert not answers.may_ask_now(one_at_a_time=True)  # the Realtime API refuses a second
    answers.asked(now=False)
    assert answers.wanted
    assert answers.done() is True  # ask for it now
    assert not answers.wanted  # once
    assert answers.awaiting  # and the upstream still owes it
    assert answers.done() is False


def test_a_full_duplex_upstream_takes_requests_during_an_answer():
    answers = Answers()
    answers.started("live_r1")
    assert answers.may_ask_now(one_at_a_time=False)  # GPT-Live
    answers.asked(now=True)
    assert not answers.wanted
    assert answers.done() is False


def test_an_answer_is_cancelled_once():
    answers = Answers()
    assert answers.cancel() is False  # nothing on air: nothing to cancel
    answers.started("resp_1")
    assert answers.cancel() is True
    assert answers.cancel() is False  # no second cancel for the same answer
    answers.done()
    answers.started("resp_2")  # a new answer can be cancelled again
    assert answers.cancel() is True


@pytest.mark.parametrize("cancelled", [True, False])
def test_no_active_response_is_our_own_race_only_after_our_cancel(cancelled):
    answers = Answers()
    answers.started("resp_1")
    if cancelled:
        answers.cancel()
    answers.done()
    assert answers.refused(CANCEL_NOT_ACTIVE) is cancelled


def test_a_refused_request_brings_no_answer():
    answers = Answers()
    answers.asked(now=True)
    assert answers.refused("conversation_already_has_active_response") is False
    assert not answers.expecting  # no stall watch for an answer that will not come


def test_reset_forgets_an_answer_and_what_was_asked():
    answers = Answers()
    answers.started("resp_1")
    answers.cancel()
    answers.asked(now=False)
    answers.reset()
    assert not (answers.active or answers.awaiting or answers.wanted or answers.cancel_sent)
    assert answers.cancel() is False
