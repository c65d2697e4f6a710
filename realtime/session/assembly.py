"""The session's collaborators, built and wired in one place (docs/architecture.md, "Why the
session core is shaped this way"). ``assemble`` gives each collaborator what it uses: the
session's state it shares (counters, record, history), the others it talks to, and the few
``Hooks`` that lead back to the session (spawn a task, end, tell the client soon, is it live).
``RelaySession`` owns what comes back and their lifetimes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from realtime.kernel.endings import Ending
from realtime.kernel.history import History
from realtime.session.answer_budget import AnswerBudget, Check
from realtime.session.answers import Answers
from realtime.session.client_events import ClientEvent
from realtime.session.continuity import Carried, Continuity, binding_of
from realtime.session.outbox import UpstreamOutbox
from realtime.session.playback import AudioTracker
from realtime.session.reader import UpstreamReader
from realtime.session.renewal import Renewal
from realtime.session.renewal_watch import RenewalWatch
from realtime.session.tool_turns import ToolTurns
from realtime.session.turn_taking import TurnTaking
from realtime.session.upstream_events import UpstreamEvents
from realtime.upstream import UpstreamAdapter, adapter_for

if TYPE_CHECKING:
    from realtime.ops.resume_store import ResumeStore
    from realtime.upstream import UpstreamClients


@dataclass(frozen=True)
class Hooks:
    """What leads back to the session."""

    spawn: Callable[..., Any]  # a task the session owns (tasks.py)
    end: Callable[[Ending], Awaitable[None]]
    notify: Callable[[ClientEvent], None]  # tell the client, without waiting
    live: Callable[[], bool]
    is_open: Callable[[], bool]
    audio_dropped: Callable[[int], None]
    answer_counted: Callable[[], None]
    switch: Callable[[UpstreamAdapter], None]  # talk to another upstream (a renewal)


@dataclass(frozen=True)
class Parts:
    upstream: UpstreamAdapter
    outbox: UpstreamOutbox
    history: History
    continuity: Continuity
    budget: AnswerBudget
    answers: Answers
    tracker: AudioTracker
    reader: UpstreamReader
    turns: TurnTaking
    tools: ToolTurns
    watch: RenewalWatch
    events: UpstreamEvents
    renewal: Renewal


@dataclass(frozen=True)
class Shared:
    """What the collaborators share with the session."""

    session_id: Any
    config: Any  # RelayConfig, with the user's session policy applied
    port: Any  # ClientPort
    counters: Any
    conversation: Any
    meter: Any
    clock: Any  # AnswerClock
    presence: Any
    audio_scale: int  # client audio bytes → counted PCM16 24 kHz bytes


def assemble(
    session: Shared,
    *,
    admitted: Any,
    clients: UpstreamClients,
    answer_budget: Check | None,
    resume_store: ResumeStore | None,
    started_at: float,
    hooks: Hooks,
) -> Parts:
    config, port, counters = session.config, session.port, session.counters
    conversation, spawn = session.conversation, hooks.spawn
    upstream = adapter_for(config, clients, admitted.tools)
    outbox = UpstreamOutbox(
        coalesce_ms=config.audio_coalesce_ms,
        encode_audio=upstream.audio_frame,
        on_dropped=hooks.audio_dropped,
        bytes_per_ms=config.audio_bytes_per_ms,
    )
    history = History()  # the conversation as the model knows it (renewal replays it)
    carried: Carried | None = admitted.carried  # a resumed session: what earlier connections left
    if carried is not None:
        history.restore(carried.snapshot)
    continuity = Continuity(
        session_id=session.session_id,
        config=config,
        store=resume_store,
        binding=binding_of(admitted.user),
        owner=admitted.channel_name,
        history=history,
        counters=counters,
        started_at=started_at,
        spawn=spawn,
    )
    budget = AnswerBudget(
        session_id=session.session_id,
        check=answer_budget,
        counters=counters,
        outbox=outbox,
        timeout_s=config.heartbeat_seconds,
        live=hooks.live,
        spawn=spawn,
        end=hooks.end,
    )
    answers = Answers()  # active, awaited, wanted, cancelled
    tracker = AudioTracker(config.audio_bytes_per_ms)  # the audio the client plays
    reader = UpstreamReader(upstream=upstream, answers=answers, stall_s=config.stall_timeout_s)
    turns = TurnTaking(
        session_id=session.session_id,
        config=config,
        upstream=upstream,
        port=port,
        notify=hooks.notify,
        counters=counters,
        conversation=conversation,
        history=history,
        answers=answers,
        tracker=tracker,
        outbox=outbox,
        reader=reader,
        clock=session.clock,
    )
    events: UpstreamEvents | None = None  # built below; the tools' notices go through it
    tools = ToolTurns(
        tools=admitted.tools,
        upstream=upstream,
        counters=counters,
        runner_options={
            "user": admitted.user,
            "session_id": session.session_id,
            "config": config,
            "default_timeout": config.tool_timeout_s,
            "phone": admitted.phone,
            "keypad": admitted.keypad,
        },
        send=turns.ask_for_answer,
        notify=lambda notice: events.tool_notice(notice),  # type: ignore[union-attr]
        history=history,
        spawn=spawn,
    )
    watch = RenewalWatch(
        config=config, answers=answers, turns=turns, tools=tools, tracker=tracker, reader=reader
    )
    events = UpstreamEvents(
        session_id=session.session_id,
        upstream=upstream,
        port=port,
        notify=hooks.notify,
        is_open=hooks.is_open,
        counters=counters,
        conversation=conversation,
        meter=session.meter,
        history=history,
        answers=answers,
        tracker=tracker,
        turns=turns,
        tools=tools,
        renewal=watch,
        answer_counted=hooks.answer_counted,
        clock=session.clock,
        # The loop's clock: time.monotonic under asyncio's loops (daphne's too).
        received=lambda: reader.last_frame,
        audio_scale=session.audio_scale,
    )
    renewal = Renewal(
        session_id=session.session_id,
        config=config,
        clients=clients,
        switch=hooks.switch,
        watch=watch,
        reader=reader,
        outbox=outbox,
        history=history,
        turns=turns,
        events=events,
        counters=counters,
        port=port,
        presence=session.presence,
        spawn=spawn,
        live=hooks.live,
    )
    return Parts(
        upstream=upstream,
        outbox=outbox,
        history=history,
        continuity=continuity,
        budget=budget,
        answers=answers,
        tracker=tracker,
        reader=reader,
        turns=turns,
        tools=tools,
        watch=watch,
        events=events,
        renewal=renewal,
    )
