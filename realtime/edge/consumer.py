"""The WebSocket edge: one consumer per browser, wiring it to one ``RelaySession``.

It accepts, admits (``realtime.edge.admission``), builds and starts the session, checks frame
sizes, parses text frames into commands (``realtime.edge.protocol``) and forwards everything to
the session. The session talks back through this consumer as its ``ClientPort``: its neutral
client events are encoded here into the browser protocol (``protocol.encode``), reply audio
goes out as binary frames, ``close(code)`` closes the socket. Administrator terminate
(channel layer) and drain (runtime) become ``session.end(...)``.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.exceptions import StopConsumer

from realtime.compat import daphne_fastpath, daphne_guards
from realtime.edge import admission, protocol
from realtime.edge.session_edge import SessionEdgeConsumer
from realtime.guards import budgets
from realtime.kernel import endings
from realtime.kernel.config import RelayConfig
from realtime.kernel.endings import Ending, SessionEnded
from realtime.ops import metrics
from realtime.ops import runtime as relay_runtime
from realtime.session import client_events as client
from realtime.session.client_events import ClientEvent
from realtime.session.core import RelaySession

log = logging.getLogger("realtime.session")


class RealtimeConsumer(SessionEdgeConsumer):
    fast: daphne_fastpath.FastFrames | None = None  # under daphne: the per-frame fast path
    config: RelayConfig
    extension_messages: protocol.ExtensionParser | None = None

    # ---- WebSocket handlers ------------------------------------------------------------------

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        runtime = relay_runtime.of(self.scope)
        self.config = runtime.config
        await self.accept()
        self.extension_messages = runtime.extensions.client_messages.parse
        try:
            admitted = await admission.admit(
                scope=self.scope,
                runtime=runtime,
                channel_name=getattr(self, "channel_name", "") or "",
            )
        except SessionEnded as refused:
            await self.refuse(refused.ending)
            return
        beat = budgets.heartbeat(admitted, self.join_groups, lambda: self.session)  # daily budget
        self.session = RelaySession(
            port=self,
            admitted=admitted,
            clients=runtime.clients,
            roster=runtime,
            on_heartbeat=beat,
            answer_budget=budgets.answer_check(admitted),  # the daily budget, per answer
            resume_store=runtime.resume_store,  # a lost socket: the session may be resumed
        )
        # Under daphne, audio frames in and replies out skip the ASGI layers (None: ASGI).
        self.fast = daphne_fastpath.attach(
            self.base_send, self.session.audio, self.config.max_binary_bytes
        )
        await self.session.start()  # spawns the upstream connect: nothing waits on it here
        await self.join_groups()  # broadcasts only; off the path to the greeting

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        session = self.session
        if session is None:
            return
        if "relay_frame_too_large" in message:  # over daphne's limit: compat/daphne_guards.py
            await session.end(daphne_guards.oversize_ending(message, self.config))
            return
        data = message.get("bytes")
        if data is not None:
            if len(data) > self.config.max_binary_bytes:
                await session.end(
                    endings.FRAME_TOO_LARGE.because(
                        f"binary frame of {len(data)} bytes exceeds the limit of "
                        f"{self.config.max_binary_bytes} bytes"
                    )
                )
                return
            session.audio(data)
            return
        text = message.get("text")
        if text is None:
            return
        if protocol.utf8_length_over(text, self.config.max_text_bytes):
            await session.end(
                endings.FRAME_TOO_LARGE.because(
                    f"text frame exceeds the limit of {self.config.max_text_bytes} bytes"
                )
            )
            return
        try:
            command = protocol.parse_client_text(text, self.extension_messages)
        except protocol.ClientProtocolError as exc:
            await session.reject(exc.code, exc.message)
            return
        await session.command(command)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        code = message.get("code", 1000)
        log.info("session %s: client disconnected (code %s)", self._session_id, code)
        await self.leave_groups()
        if self.session is not None:
            await self.session.client_gone(code)
        raise StopConsumer()

    # ---- Channel layer: an administrator's terminate -----------------------------------------

    async def realtime_terminate(self, event: dict[str, Any]) -> None:
        by = str(event.get("by") or "")
        log.info("session %s: terminated by %s", self._session_id, by or "?")
        if self.session is not None:
            await self.session.end(endings.TERMINATED, ended_by=by)

    async def realtime_handover(self, event: dict[str, Any]) -> None:
        """A client resumed this session on another connection (``realtime/edge/resume.py``)."""
        log.info("session %s: resumed on another connection; letting go", self._session_id)
        if self.session is not None:
            await self.session.hand_over()

    # ---- ClientPort (close() is AsyncWebsocketConsumer's) -------------------------------------

    async def send_event(self, event: ClientEvent) -> None:
        text = protocol.encode(event)
        fast = self.fast
        if fast is not None:
            fast.send_text(text)  # a closed connection drops it, as daphne would
        else:
            await self.base_send({"type": "websocket.send", "text": text})

    async def send_audio(self, pcm: bytes) -> None:
        fast = self.fast
        if fast is not None:
            fast.send_bytes(pcm)  # a closed connection drops it, as daphne would
        else:
            await self.base_send({"type": "websocket.send", "bytes": pcm})

    # ---- Endings without a session, errors, cleanup ------------------------------------------

    async def refuse(self, ending: Ending) -> None:
        log.info("connection refused (%s, close %d)", ending.code, ending.close_code)
        metrics.count_refusal(ending.code, "browser")
        try:
            await self.send_event(client.Error(ending.code, ending.message, fatal=True))
            await self.close(ending.close_code)
        except Exception:  # the client may already be gone
            pass
