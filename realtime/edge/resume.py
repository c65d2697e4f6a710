"""``/realtime?resume=TOKEN``: the same session again, on this worker or any other.

The token (``session_info``'s ``resume_token``) is checked and spent, then the session's
state is found in the resume store (``realtime/ops/resume_store.py``):

- **detached** (its client's socket was lost, or its worker drained): taken as it is, within
  ``RELAY_RESUME_SECONDS`` of the loss;
- **still attached** to another connection (the old socket has not noticed it is dead: a phone
  that changed network; or its worker was SIGKILLed): that connection is asked to hand it over
  through the channel layer (``realtime.handover``): it tells its client 4015
  ``session_resumed_elsewhere``, writes the session's latest state and lets go. A connection
  that does not answer within ``HANDOVER_S`` (its worker is gone) loses the session anyway:
  the state its worker last wrote (at the end of the last answer) is taken, and the old
  connection's writes to the row and the store fail from then on (both are fenced by the
  serving connection's name).

Then the session's registry row is moved to this connection (a row closed meanwhile —
terminated by an administrator, expired — cannot be) and the new connection becomes the owner.
Any failure gives a reason for the client (``resume_unavailable``); the connection then gets
a new session.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from channels.layers import get_channel_layer
from django.db import DatabaseError

from realtime.compat.cancellation import db_call
from realtime.ops import presence as rows
from realtime.ops.runtime import Runtime
from realtime.records.entries import last_entry_seq
from realtime.session.continuity import Carried, binding_of

log = logging.getLogger("realtime.session")

HANDOVER = "realtime.handover"  # the channel-layer message that asks a connection to let go
HANDOVER_S = 3.0  # how long the connection serving the session has to let go
POLL_S = 0.05


class ResumeUnavailable(Exception):
    """Why this token cannot resume a session (told to the client: never another user's data)."""


@dataclass(frozen=True, slots=True)
class Resumed:
    session_id: uuid.UUID
    carried: Carried
    last_entry: int  # the last conversation entry written (the record goes on after it)


def token_of(scope: dict[str, Any]) -> str | None:
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("resume")
    return values[0] if values else None


async def resume(
    *, token: str, user: Any, runtime: Runtime, fields: dict[str, Any], owner: str
) -> Resumed:
    """Take the session ``token`` names over for the connection ``owner`` (its registry row
    gets ``fields``); raises ``ResumeUnavailable`` with the reason."""
    config = runtime.config
    if config.resume_seconds <= 0:
        raise ResumeUnavailable("this relay does not resume sessions (RELAY_RESUME_SECONDS=0)")
    store = runtime.resume_store
    redeemed = await store.redeem(token, binding_of(user))
    if redeemed is None:
        raise ResumeUnavailable("the resume token is invalid, expired or already used")
    if redeemed.binding != binding_of(user):
        log.warning("resume token of session %s presented by another user", redeemed.session_id)
        raise ResumeUnavailable("the resume token belongs to another user")
    session_id = redeemed.session_id
    state = await store.load(session_id)
    if state is None:
        raise ResumeUnavailable(
            f"the session is gone (it ended, or nobody resumed it within {config.resume_seconds} s)"
        )
    detached_at = state.get("detached_at")
    if detached_at is None:
        state = await _hand_over(store, session_id, owner) or state
    elif time.time() - float(detached_at) > config.resume_seconds:
        raise ResumeUnavailable(f"nobody resumed the session within {config.resume_seconds} s")
    try:
        carried = Carried.from_state(state)
    except ValueError:
        raise ResumeUnavailable("the session's saved state could not be read") from None
    try:
        refused = await db_call(rows.session_reclaim, session_id=session_id, fields=fields)
        last = await db_call(last_entry_seq, session_id=session_id)
    except DatabaseError as exc:
        log.warning("session %s: resume: registry write failed: %s", session_id, exc)
        raise ResumeUnavailable("the relay's database is unavailable") from None
    if refused:
        raise ResumeUnavailable(refused)
    await store.claim(session_id, owner, 2 * config.heartbeat_seconds + config.resume_seconds)
    return Resumed(uuid.UUID(session_id), carried, last)


async def _hand_over(store: Any, session_id: str, owner: str) -> dict[str, Any] | None:
    """Ask the connection serving the session to let go; its last state (None: unchanged)."""
    current = await store.owner(session_id)
    if not current or current == owner:
        return None
    layer = get_channel_layer()
    if layer is not None:
        try:
            async with asyncio.timeout(HANDOVER_S):
                await layer.send(current, {"type": HANDOVER})
        except Exception as exc:  # the layer is down: the old connection will be fenced
            log.warning("session %s: handover request not sent: %s", session_id, exc)
            return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HANDOVER_S
    while loop.time() < deadline:
        await asyncio.sleep(POLL_S)
        state = await store.load(session_id)
        if state is not None and state.get("detached_at") is not None:
            log.info("session %s: handed over by its previous connection", session_id)
            return state
    log.warning(
        "session %s: its previous connection did not hand it over within %g s (its worker "
        "is gone?); resuming from its last saved state",
        session_id,
        HANDOVER_S,
    )
    return None
