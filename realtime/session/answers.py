"""The model's answers as the session sees them: one small state object.

An answer is *active* from the upstream's start of it to its end; one can be *awaited* (the
session asked, it has not started: the upstream owes us something, so silence is a stall);
one can be *wanted* (asked for while another is active on an upstream that allows one at a
time: it is asked for when the active one is done); and the active one can have been
*cancelled* by us (no second cancel, and the upstream's "no active response" to our cancel,
when it crosses the answer's own end, is our own race, not an error for the client).

Every change of that state happens here, named for what happened; the session reads it.
"""

from __future__ import annotations

# The upstream's answer to a cancel that crossed the answer's own end.
CANCEL_NOT_ACTIVE = "response_cancel_not_active"


class Answers:
    __slots__ = ("active", "awaiting", "cancel_sent", "response_id", "wanted")

    def __init__(self) -> None:
        self.active = False  # between the upstream's start and end of an answer
        self.awaiting = False  # asked for one; it has not started yet
        self.wanted = False  # ask for one as soon as the active one is done
        self.cancel_sent = False  # we cancelled the active answer
        self.response_id = ""  # the active (or last) answer's id

    @property
    def expecting(self) -> bool:
        """The upstream owes us an answer or the rest of one (silence now is a stall)."""
        return self.awaiting or self.active

    # ---- what the session asks ---------------------------------------------------------------

    def may_ask_now(self, *, one_at_a_time: bool) -> bool:
        """Can a request for an answer go upstream now? Not while one is active on an upstream
        that allows one at a time (``answers_block_requests``)."""
        return not (self.active and one_at_a_time)

    def asked(self, *, now: bool) -> None:
        """A request for an answer was accepted: sent now, or wanted once the active one is
        done. Either way the upstream owes us an answer."""
        if not now:
            self.wanted = True
        self.awaiting = True

    def cancel(self) -> bool:
        """Cut the active answer: True when a cancel should go upstream (once per answer)."""
        if self.active and not self.cancel_sent:
            self.cancel_sent = True
            return True
        return False

    # ---- what the upstream says --------------------------------------------------------------

    def started(self, response_id: str) -> None:
        self.active = True
        self.awaiting = False
        self.cancel_sent = False  # a new answer: not cancelled yet
        self.response_id = response_id

    def done(self) -> bool:
        """The active answer ended; True when another was wanted meanwhile (ask for it now)."""
        self.active = False
        wanted, self.wanted = self.wanted, False
        return wanted

    def refused(self, code: str) -> bool:
        """The upstream reported an error: a refused request brings no answer (no stall
        watch). True when the error is only our cancel crossing the answer's end."""
        self.awaiting = False
        return code == CANCEL_NOT_ACTIVE and self.cancel_sent

    def reset(self) -> None:
        """Forget everything (the upstream that owed it is gone)."""
        self.active = self.awaiting = self.wanted = self.cancel_sent = False
