"""The phone edge: one consumer per call's media stream (``/twilio/media``), wiring it to one
``RelaySession`` in G.711 μ-law 8 kHz both ways (no transcoding: both API families take it).

Twilio opens the stream the voice webhook's TwiML named (``realtime/edge/twilio_voice.py``). The
``start`` message carries the stream token as a custom parameter: it is spent here (single
use, bound to the call's ``CallSid``, ``RELAY_PHONE_STREAM_TTL_SECONDS``) before anything
else; a stream without a valid token is closed (1008) before any upstream session opens.
Then the call is admitted like a browser (``admission.admit``: the session policy with
``scope["relay_phone"]``, budgets, limits, a registry row) and runs as ``RELAY_PHONE_USER``
(or anonymously, limited per caller number).

As the session's ``ClientPort``: reply audio goes out as 20 ms ``media`` messages; a ``mark``
follows every 100 ms of an answer's audio and its end. Twilio echoes a mark when the caller
has heard the audio before it, so the relay knows how much of each answer was played; when
the caller talks over an answer the relay sends ``clear`` (Twilio drops what it has not
played) and the answer is truncated where the last echoed mark says the caller was. Key
presses (``dtmf``) go to the call's ``Keypad`` (its tools read every key,
``ToolContext.keypad``) and, as the session policy's ``keypad`` hook decides (by default a
system note, "The caller pressed 5 on the keypad."), to the model and the conversation record
(``realtime/extensions/keypad.py``). Twilio's ``stop`` (the caller hung up) ends the session.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from channels.exceptions import StopConsumer

from realtime.edge import admission
from realtime.edge import twilio_voice as wire
from realtime.edge.session_edge import SessionEdgeConsumer
from realtime.extensions import keypad
from realtime.extensions.client_messages import AddSystemMessage
from realtime.guards import budgets
from realtime.kernel import commands, endings
from realtime.kernel.endings import Ending, SessionEnded
from realtime.ops import metrics
from realtime.ops import runtime as relay_runtime
from realtime.session import client_events as client
from realtime.session.client_events import ClientEvent
from realtime.session.core import RelaySession
from realtime.tools import Keypad, PhoneCall

log = logging.getLogger("realtime.session")

MARK_EVERY_BYTES = 800  # a mark every 100 ms of reply audio (μ-law: 8 bytes a millisecond)
MAX_TEXT_BYTES = 64 * 1024  # a media message is ~300 bytes; anything far larger is not Twilio


class PhoneConsumer(SessionEdgeConsumer):
    stream_sid = ""
    _call: wire.Call | None = None  # set with the session
    _admitted: admission.Admitted

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        runtime = relay_runtime.of(self.scope)
        self.runtime = runtime
        if not runtime.config.phone_enabled:
            await self.close()  # before accept: HTTP 403; the phone edge is off
            return
        await self.accept()
        self._item: tuple[str, int] | None = None  # the answer part on air
        self._sent = 0  # its bytes sent
        self._marked = 0  # its bytes up to the last mark sent
        self._heard: dict[str, int] = {}  # item id → bytes the caller heard (echoed marks)
        self._cleared: dict[str, None] = {}  # items cut by a clear (ordered, bounded)
        self._rest = b""  # reply audio short of a 20 ms frame
        self._reports: set[asyncio.Future[Any]] = set()

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        text = message.get("text")
        if text is None or len(text) > MAX_TEXT_BYTES:
            return
        event = wire.parse(text)
        session = self.session
        if isinstance(event, wire.Media):
            if session is not None:
                session.audio(event.audio)
        elif isinstance(event, wire.MarkEcho):
            self._mark_echoed(event.name)
        elif isinstance(event, wire.Start):
            if session is None and not self.stream_sid:
                await self._start(event)
        elif isinstance(event, wire.Digit):
            if session is not None:
                await self._key_pressed(session, event.digit)
        elif isinstance(event, wire.Stop):
            log.info("session %s: the caller hung up", self._session_id)
            if session is not None:
                await session.client_gone(1000)
            await self.close(1000)

    async def _start(self, start: wire.Start) -> None:
        self.stream_sid = start.stream_sid or "-"
        runtime = self.runtime
        config = runtime.config
        call = await self._redeem(start)
        if call is None:
            log.warning("phone stream refused: no valid stream token (1008)")
            await self.refuse(endings.TICKET_INVALID)
            return
        if start.encoding != "audio/x-mulaw":
            log.warning("call %s: stream encoding %r refused", call.call_sid, start.encoding)
            await self.refuse(endings.INTERNAL_ERROR)
            return
        found, user = await wire.phone_user(config)
        if not found:
            await self.refuse(endings.AUTH_REQUIRED)
            return
        scope = dict(self.scope)
        refusal = scope.get("relay_refusal")  # the browser rules (login, origin) are not ours
        scope["relay_refusal"] = refusal if refusal is not None and refusal.close_code in (
            endings.SERVER_RESTARTING.close_code, endings.REGISTRY_UNAVAILABLE.close_code
        ) else None  # fmt: skip
        scope["user"] = user
        scope["relay_phone"] = call.scope_entry()
        # Anonymous calls are limited per caller number (connects a minute), never logged.
        scope["client"] = (wire.caller_key(call.caller), 0)
        shown = wire.mask(call.caller, config.phone_show_numbers)
        called = wire.mask(call.called, config.phone_show_numbers)
        try:
            admitted = await admission.admit(
                scope=scope,
                runtime=runtime,
                channel_name=getattr(self, "channel_name", "") or "",
                fields={
                    "client_addr": shown,
                    "origin": f"phone:{call.provider}",
                    "user_agent": f"{call.provider} call {call.call_sid} from {shown} to {called}",
                },
            )
        except SessionEnded as refused:
            await self.refuse(refused.ending)
            return
        admitted = dataclasses.replace(
            admitted,
            config=admitted.config.replace(audio_format="pcmu"),
            edge="phone",
            phone=PhoneCall(call.provider, call.call_sid, shown, called),
            keypad=Keypad(),
        )
        self._call, self._admitted = call, admitted
        log.info("session %s: call %s from %s", admitted.session_id, call.call_sid, shown)
        metrics.PHONE_CALLS.inc()
        beat = budgets.heartbeat(admitted, self.join_groups, lambda: self.session)
        self.session = RelaySession(
            port=self,
            admitted=admitted,
            clients=runtime.clients,
            roster=runtime,
            on_heartbeat=beat,
            answer_budget=budgets.answer_check(admitted),
            resume_store=None,  # a call cannot come back on another socket
        )
        admitted.conversation.add("session", "phone_call", f"{call.provider} call from {shown}")
        await self.session.start()
        await self.join_groups()

    async def _key_pressed(self, session: RelaySession, digit: str) -> None:
        """Every key goes to the call's keypad (its tools see them all); the model and the
        record get what the session policy's ``keypad`` hook says (by default which key)."""
        admitted, call = self._admitted, self._call
        if admitted.keypad is None or call is None:
            return
        press = keypad.KeyPress(digit, admitted.keypad.press(digit), call.scope_entry())
        note = await keypad.note_for(admitted.policy.keypad, press, session_id=session.id)
        if note is not None:
            await session.command(AddSystemMessage(note))

    async def _redeem(self, start: wire.Start) -> wire.Call | None:
        if not start.token or not start.call_sid:
            return None
        redeemed = await self.runtime.resume_store.redeem(start.token, wire.binding(start.call_sid))
        if redeemed is None or redeemed.binding != wire.binding(start.call_sid):
            return None
        call = wire.Call.from_json(redeemed.session_id)
        return call if call is not None and call.call_sid == start.call_sid else None

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        code = message.get("code", 1000)
        log.info("session %s: media stream closed (code %s)", self._session_id, code)
        await self.leave_groups()
        if self.session is not None:
            await self.session.client_gone(1000)  # a call that is gone does not come back
        raise StopConsumer()

    # ---- Channel layer: an administrator's terminate -----------------------------------------

    async def realtime_terminate(self, event: dict[str, Any]) -> None:
        by = str(event.get("by") or "")
        if self.session is not None:
            log.info("session %s: call terminated by %s", self._session_id, by or "?")
            await self.session.end(endings.TERMINATED, ended_by=by)

    async def realtime_handover(self, event: dict[str, Any]) -> None:
        pass  # calls are never resumed

    # ---- ClientPort --------------------------------------------------------------------------

    async def send_event(self, event: ClientEvent) -> None:
        if isinstance(event, client.AnswerAudioStart):
            await self._flush()
            self._item = (event.item_id, event.content_index)
            self._sent = self._marked = 0
        elif isinstance(event, client.AnswerAudioDone):
            await self._flush()
            if self._item is not None and self._sent > self._marked:
                await self._mark()
        elif isinstance(event, client.SpeechStarted):
            await self._barge_in()
        elif isinstance(event, client.Error) and event.fatal:
            log.info("session %s: call ends (%s)", self._session_id, event.code)

    async def send_audio(self, pcm: bytes) -> None:
        """Reply audio (μ-law) as 20 ms media messages, a mark every 100 ms."""
        data = self._rest + pcm if self._rest else pcm
        whole = len(data) - len(data) % wire.FRAME_BYTES
        self._rest = data[whole:]
        for start in range(0, whole, wire.FRAME_BYTES):
            await self._send(wire.media(self.stream_sid, data[start : start + wire.FRAME_BYTES]))
            self._sent += wire.FRAME_BYTES
            if self._sent - self._marked >= MARK_EVERY_BYTES:
                await self._mark()

    async def _flush(self) -> None:
        if self._rest:
            rest, self._rest = self._rest, b""
            await self._send(wire.media(self.stream_sid, rest))
            self._sent += len(rest)

    async def _mark(self) -> None:
        if self._item is None:
            return
        item_id, index = self._item
        self._marked = self._sent
        await self._send(wire.mark(self.stream_sid, f"{item_id}/{index}/{self._sent}"))

    def _mark_echoed(self, name: str) -> None:
        """Twilio played the audio before this mark (or dropped it: after a clear)."""
        item_id, _, rest = name.partition("/")
        try:
            heard = int(rest.rpartition("/")[2])
        except ValueError:
            return
        if item_id and item_id not in self._cleared:
            self._heard[item_id] = max(self._heard.get(item_id, 0), heard)
            if len(self._heard) > 32:  # bounded: only recent answers can be cut
                self._heard.pop(next(iter(self._heard)))

    async def _barge_in(self) -> None:
        """The caller talks over an answer: Twilio drops what it has not played (``clear``),
        and the session truncates the answer at what the caller heard (the last echoed mark).
        The session cuts the answer right after this event; the figure follows it."""
        self._rest = b""
        await self._send(wire.clear(self.stream_sid))
        item = self._item
        if item is None or self.session is None:
            return
        item_id = item[0]
        self._cleared[item_id] = None  # its late echoes mean nothing
        if len(self._cleared) > 32:
            self._cleared.pop(next(iter(self._cleared)))
        played_ms = self._heard.get(item_id, 0) // 8
        session = self.session
        self._item = None
        # After the session's cut (no await between this event and it), not before.
        report = asyncio.ensure_future(self._report(session, item_id, played_ms))
        self._reports.add(report)
        report.add_done_callback(self._reports.discard)

    async def _report(self, session: RelaySession, item_id: str, played_ms: int) -> None:
        await asyncio.sleep(0)
        await session.command(commands.Playback(item_id, played_ms))

    async def _send(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    # ---- endings without a session, cleanup --------------------------------------------------

    async def refuse(self, ending: Ending) -> None:
        log.info("phone stream refused (%s, close %d)", ending.code, ending.close_code)
        metrics.count_refusal(ending.code, "phone")
        try:
            await self.close(ending.close_code)
        except Exception:  # Twilio may already be gone
            pass

    async def cleanup(self) -> None:
        for report in list(getattr(self, "_reports", ())):
            report.cancel()
        await super().cleanup()
