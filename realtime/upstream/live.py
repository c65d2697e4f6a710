"""GPT-Live (``client.live``): OpenAI ``/v1/live/sessions`` and Azure Foundry ``/openai/v1/…``.

GPT-Live is full duplex and manages turns itself: it has no items, no response lifecycle,
no speech or turn events and no truncate. This adapter *derives* what the browser protocol
promises (docs/gpt-live.md has the whole mapping; ``live_turns.py`` derives answers and turns,
``live_session.py`` builds what is sent):
- an **answer** is the assistant output between two pauses: the first output delta starts
  it (``response_started``, a synthetic item id for ``audio_start``/``text_delta``), and
  ``ANSWER_GAP_S`` without output ends it (``text_done``, ``audio_done``, ``response_done``);
- the **user's speech** comes from the relay's own energy detector on the client's audio
  (``speech_started``/``speech_stopped``, as soon as the user speaks), with the input
  transcript's first delta as a fallback; the final ``transcription`` is the transcript
  deltas joined, once the user is quiet and the deltas pause for ``USER_GAP_S``;
- a **barge-in** ends the answer on air (the session stops its audio at the client); what the
  user heard is told to the model as silent context (``session.thinking.append``);
- **typed text** is speakable context that asks for a reply (``session.commentary.append``);
- **tools** run through Responses delegation: the delegated backend's function calls (inside
  ``response.event``) run in the relay, their outputs go back with ``response.item.create``,
  then ``response.create`` continues the delegated response.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from typing import Any

from realtime.compat.sdk import raw_socket
from realtime.kernel import endings
from realtime.kernel.endings import SessionEnded
from realtime.kernel.events import (
    BackendUsage,
    Event,
    ToolCall,
    ToolTurnEnded,
    UpstreamEnded,
    UpstreamError,
    UpstreamFrames,
    UsageReport,
)
from realtime.kernel.history import EMPTY, Snapshot
from realtime.upstream import live_session as frames
from realtime.upstream.adapter import Unsupported, UpstreamAdapter
from realtime.upstream.clients import close_connection, enter, websocket_options
from realtime.upstream.live_turns import LiveTurns
from realtime.upstream.realtime import usage_of
from realtime.upstream.speech import SpeechDetector

log = logging.getLogger("realtime.upstream")

CLOSE_WAIT_S = 2.0  # for session.closed (final usage) after session.close

# session.closed reasons the relay did not ask for → the client's ending.
CLOSED_ENDINGS = {
    "expired": endings.UPSTREAM_SESSION_EXPIRED,
    "content": endings.UPSTREAM_CLOSED.because(
        "the realtime service ended the session (content policy)"
    ),
    "remote_hangup": endings.UPSTREAM_CLOSED,
    "connection_lost": endings.UPSTREAM_CLOSED,
}


class LiveAdapter(UpstreamAdapter):
    api = "live"
    answers_block_requests = False  # full duplex: typed text and tool results never wait
    audio_prefix = '{"type":"session.input_audio.append"'

    _connection: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        td = self.config.turn_detection
        self._speech = SpeechDetector(
            threshold=td.threshold if td else 0.5,
            silence_ms=td.silence_duration_ms if td else 500,
            audio_format=self.config.audio_format,
        )
        self.turns = LiveTurns()  # answers and user turns, derived from pauses
        self._calls: dict[str, list[str]] = {}  # delegation id → its function call ids
        self.session_id = ""

    @property
    def turn_detection(self) -> str:
        return "model"

    # ---- connect ---------------------------------------------------------------------------

    async def open(self, history: Snapshot = EMPTY) -> None:
        """``session.start`` (with the conversation so far as its text ``input``: the most
        recent part that fits, see ``live_session.history_input``), then ``session.started``."""
        config = self.config
        client = self.clients.client(config)
        manager = client.live.connect(websocket_connection_options=websocket_options(config))
        self._connection = await enter(manager, config)
        raw = raw_socket(self._connection)
        self.send, self.recv, self.write_now = raw.send, raw.recv, raw.write_now
        start = frames.session_start(config, self.tools.live_tools(), history)
        await self.send(frames.to_json(start))
        async with asyncio.timeout(config.connect_timeout_s):
            while True:
                event = json.loads(await self.recv())
                kind = event.get("type")
                if kind == "session.started":
                    self.learn(event.get("session"))
                    return
                if kind == "error":
                    err = event.get("error") or {}
                    raise SessionEnded(
                        endings.UPSTREAM_SESSION_REJECTED.because(
                            "the realtime service rejected the session settings: "
                            f"{err.get('message') or err.get('code')}"
                        )
                    )

    def follow(self, previous: UpstreamAdapter) -> None:
        if isinstance(previous, LiveAdapter):  # live_a<n>, live_u<n>: the numbering goes on
            self.turns.seq = previous.turns.seq

    def busy(self) -> bool:
        """A derived answer or user utterance is under way, or a delegated tool turn."""
        return self.turns.busy or bool(self._calls)

    # ---- upstream → session -------------------------------------------------------------------

    def translate(self, frame: bytes | str, now: float) -> list[Event]:
        event = json.loads(frame)
        kind = event.get("type")
        # What the model says and what the user said: answers and turns (live_turns.py).
        if kind == "session.output_audio.delta":
            try:
                pcm = base64.b64decode(event.get("delta", ""), validate=True)
            except (binascii.Error, ValueError):
                return []
            return self.turns.output_audio(pcm, now)
        if kind == "session.output_transcript.delta":
            delta, start = str(event.get("delta") or ""), int(event.get("start_ms") or 0)
            return self.turns.output_transcript(delta, start, now)
        if kind == "session.input_transcript.delta":
            return self.turns.input_transcript(str(event.get("delta") or ""), now)
        out: list[Event] = []
        if kind == "session.usage.updated":
            out.append(UsageReport(int((event.get("usage") or {}).get("seconds") or 0)))
        elif kind == "response.event":
            self._backend(event, out)
        elif kind == "session.delegation.created":
            self._delegation(event, out)
        elif kind == "session.closed":
            reason = str(event.get("reason") or "")
            ending = CLOSED_ENDINGS.get(reason)
            if ending is not None:
                out.append(UpstreamEnded(ending, f"session_closed_{reason}"))
        elif kind == "error":
            err = event.get("error") or {}
            code = str(err.get("code") or err.get("type") or "upstream_error")
            message = str(err.get("message") or "the realtime service reported an error")
            out.append(UpstreamError(code, message))
        elif kind == "info":
            log.info("GPT-Live notice %s: %s", event.get("code"), event.get("message"))
        return out

    def deadline(self) -> float | None:
        return self.turns.deadline()

    def tick(self, now: float) -> list[Event]:
        return self.turns.tick(now)

    def _backend(self, event: dict[str, Any], out: list[Event]) -> None:
        """A nested Responses event of the delegated backend (``response.event``)."""
        delegation = str(event.get("delegation_id") or "")
        nested = event.get("event") or {}
        kind = nested.get("type")
        if kind == "response.output_item.done":
            item = nested.get("item") or {}
            if item.get("type") == "function_call":
                call_id = str(item.get("call_id"))
                self._calls.setdefault(delegation, []).append(call_id)
                out.append(ToolCall(call_id, str(item.get("name")), item.get("arguments") or "{}"))
        elif kind in ("response.completed", "response.failed", "response.incomplete"):
            response = nested.get("response") or {}
            usage = usage_of(response.get("usage"))
            if usage.total_tokens:
                out.append(BackendUsage(usage))
            if self._calls.pop(delegation, None):
                out.append(ToolTurnEnded(cancelled=kind != "response.completed"))

    def _delegation(self, event: dict[str, Any], out: list[Event]) -> None:
        delegation = event.get("delegation") or {}
        if delegation.get("target") == "client":
            # This relay runs no client-side agent: say so at once, so the model does not
            # wait for a result that will never come.
            content = "No backend is available for that here; tell the user you cannot do it."
            out.append(UpstreamFrames([frames.append("commentary", content, delegation.get("id"))]))

    # ---- session → upstream -------------------------------------------------------------------

    def audio_frame(self, pcm: bytes) -> str:
        change = self._speech.feed(pcm)
        if change is not None:
            self.turns.speech_changed(change, time.monotonic())
            self.wake()
        return (
            '{"type":"session.input_audio.append","audio":"' + base64.b64encode(pcm).decode() + '"}'
        )

    def user_text(self, text: str) -> list[str]:
        return frames.typed_text(text)

    def request_answer(self) -> list[str]:
        return []  # the model answers on its own; typed text asks for a reply itself

    def cancel_answer(self) -> list[str]:
        return []  # no cancel: the session stops the audio; truncate() tells the model

    def commit_audio(self) -> list[str]:
        raise Unsupported(
            "commit_unavailable", "GPT-Live ends turns itself: there is no manual commit"
        )

    def answer_cut(self, item_id: str) -> None:
        # GPT-Live cannot be stopped: the answer ends here for the client, and whatever the
        # model says next is a new answer (played, not dropped as audio of a cut item).
        if self.turns.answer_cut(item_id):
            self.wake()

    def truncate(self, item_id: str, content_index: int, heard_ms: int) -> list[str]:
        return [frames.interrupted(self.turns.heard_text(item_id, heard_ms))]

    def tool_result(self, call_id: str, output: str) -> list[str]:
        return [frames.function_output(call_id, output)]

    def continue_after_tools(self) -> list[str]:
        return [frames.CONTINUE_DELEGATION]

    def system_message(self, text: str) -> list[str]:
        return [frames.append("instructions", text[: frames.APPEND_CHARS])]

    async def close(self) -> list[Event]:
        """``session.close``, then wait briefly for ``session.closed`` and its final usage."""
        connection, self._connection = self._connection, None
        if connection is None:
            return []
        out: list[Event] = []
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                await self.send('{"type":"session.close"}')
                while True:
                    event = json.loads(await self.recv())
                    if event.get("type") == "session.closed":
                        seconds = (event.get("usage") or {}).get("seconds")
                        if seconds is not None:
                            out.append(UsageReport(int(seconds)))
                        break
        except Exception as exc:  # the socket may already be gone; a bounded goodbye
            log.debug("GPT-Live close: %s", type(exc).__name__)
        await close_connection(connection)
        return out
