"""Admission: may this connection become a session? Checked once, before any upstream work.

1. The access middleware's verdict (origin, login or ticket, draining), from the scope.
2. The session policy (``RELAY_SESSION_POLICY``): this user's instructions, voice, tools and
   limits, applied to a configuration of the session's own.
3. Budgets (``realtime/guards/budgets.py``): connects per minute, seconds and tokens a day.
4. A registry row (limits count rows across workers: no row, no session).
5. The concurrency limits, per user and in total, counted across workers.

A connection with a resume token (``/realtime?resume=…``, ``realtime/edge/resume.py``) that
passes 1–3 takes its session's row over instead of 4–5 (the row was counted all along);
when the token cannot resume, ``resume_refused`` says why and a new session is admitted.
A refusal raises ``SessionEnded`` with the ending to tell the client.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError

from realtime.edge import resume as resuming
from realtime.extensions.policy import PolicyError, SessionPolicy, default_policy, resolve_policy
from realtime.guards import budgets
from realtime.guards.budgets import Budget
from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.counters import SessionCounters
from realtime.kernel.endings import SessionEnded
from realtime.ops.presence import Presence
from realtime.ops.runtime import Runtime
from realtime.records.conversation import Conversation
from realtime.session.continuity import Carried
from realtime.tools import Keypad, PhoneCall, ToolRegistry

log = logging.getLogger("realtime.session")

DEFAULTS = SessionPolicy()


@dataclass(frozen=True)
class Admitted:
    session_id: uuid.UUID
    config: RelayConfig  # the runtime's, with the session policy applied
    tools: ToolRegistry  # the tools this session may use
    user: Any  # the Django user, or None (anonymous)
    counters: SessionCounters
    presence: Presence
    conversation: Conversation  # what was said, written with the heartbeat
    budget: Budget | None = None  # what is left of the user's budgets (session_info)
    channel_name: str = ""  # the connection serving the session (fences a resume elsewhere)
    carried: Carried | None = None  # a resumed session: what its earlier connections left
    resume_refused: str | None = None  # a resume token that could not resume: why
    policy: SessionPolicy = DEFAULTS  # what the session policy decided (all of it)
    edge: str = "browser"  # where the client came from ("phone": the phone edge), for metrics
    phone: PhoneCall | None = None  # a phone call's facts, for its tools (ToolContext.phone)
    keypad: Keypad | None = None  # a phone caller's key presses, for its tools (.keypad)


async def admit(
    *,
    scope: dict[str, Any],
    runtime: Runtime,
    channel_name: str,
    fields: dict[str, str] | None = None,
) -> Admitted:
    """``fields``: what the registry row says about the client instead of the scope's
    address, origin and user agent (the phone edge: a masked caller number)."""
    refusal = scope.get("relay_refusal")
    if refusal is not None:
        raise SessionEnded(refusal)
    session_id = uuid.uuid4()
    log.info("session %s: client connected from %s", session_id, client_address(scope))
    user = scope.get("user")
    user = user if user is not None and user.is_authenticated else None
    config, tools, policy = await _apply_policy(runtime, user, scope, session_id)
    budget = await budgets.admit(scope=scope, limiter=runtime.limiter, config=config, user=user)
    channel_name = channel_name or f"relay.local!{uuid.uuid4().hex}"  # no channel layer
    fields = describe(scope, config, channel_name) | {
        k: v[: 64 if k == "client_addr" else 255] for k, v in (fields or {}).items()
    }
    counters = SessionCounters()
    conversation = Conversation(enabled=config.transcripts_stored)
    runtime.ensure_reaper()  # this worker's reaper runs on the sessions' loop
    token = resuming.token_of(scope)
    refused: str | None = None
    if token is not None:
        try:
            resumed = await resuming.resume(
                token=token, user=user, runtime=runtime, fields=fields, owner=channel_name
            )
        except resuming.ResumeUnavailable as exc:
            refused = str(exc)
            log.info("session %s: resume refused: %s", session_id, refused)
        else:
            log.info("session %s: resumed as %s", session_id, resumed.session_id)
            session_id, carried = resumed.session_id, resumed.carried
            counters = carried.counters_object()
            conversation.continue_after(resumed.last_entry)
            presence = _presence(session_id, counters, conversation, runtime, channel_name)
            presence.opened = True  # its row, taken over
            return Admitted(
                session_id, config, tools, user, counters, presence, conversation, budget,
                channel_name, carried, policy=policy,
            )  # fmt: skip
    presence = _presence(session_id, counters, conversation, runtime, channel_name)
    try:
        over = await runtime.registrar.register(session_id, fields, config)
    except DatabaseError as exc:
        # Limits hold across workers through these rows: no row, no session.
        log.warning("session %s: registry write failed: %s", session_id, exc)
        raise SessionEnded(endings.REGISTRY_UNAVAILABLE) from None
    presence.opened = True
    if over:
        raise SessionEnded(endings.TOO_MANY_SESSIONS.because(over))
    return Admitted(
        session_id, config, tools, user, counters, presence, conversation, budget,
        channel_name, resume_refused=refused, policy=policy,
    )  # fmt: skip


def _presence(
    session_id: uuid.UUID,
    counters: SessionCounters,
    conversation: Conversation,
    runtime: Runtime,
    channel_name: str,
) -> Presence:
    presence = Presence(
        session_id,
        counters,
        runtime.presence_writes,
        runtime.config.heartbeat_seconds,
        conversation,
    )
    presence.channel_name = channel_name
    return presence


async def _apply_policy(
    runtime: Runtime, user: Any, scope: dict[str, Any], session_id: uuid.UUID
) -> tuple[RelayConfig, ToolRegistry, SessionPolicy]:
    extensions = runtime.extensions
    if extensions.policy is default_policy:  # the defaults: no call, no thread hop
        return runtime.config, extensions.tools, DEFAULTS
    try:
        policy = await resolve_policy(extensions.policy, user, scope)
    except PolicyError:
        log.exception("session %s: the session policy failed", session_id)
        raise SessionEnded(endings.INTERNAL_ERROR) from None
    if not policy.allow:
        log.info("session %s: refused by the session policy", session_id)
        raise SessionEnded(endings.POLICY_REFUSED)
    config = runtime.config
    overrides = policy.config_overrides()
    if overrides:
        config = config.replace(**overrides)
    tools = extensions.tools
    if policy.tools is not None:
        tools = tools.only(policy.allowed_tools(tools.names))
    return config, tools, policy


def describe(scope: dict[str, Any], config: RelayConfig, channel_name: str) -> dict[str, Any]:
    """The registry row's fixed fields (no secrets: provider label and model only)."""
    headers = dict(scope.get("headers") or [])
    user = scope.get("user")
    return {
        "user": user if user is not None and user.is_authenticated else None,
        "client_addr": client_address(scope)[:64],
        "origin": headers.get(b"origin", b"").decode("latin-1")[:255],
        "user_agent": headers.get(b"user-agent", b"").decode("latin-1")[:255],
        "provider": config.provider,
        "model": config.model[:100],
        "channel_name": channel_name,
    }


def client_address(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("?", 0)
    return f"{client[0]}:{client[1]}"
