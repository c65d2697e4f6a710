"""A Channels consumer base for long-lived, high-rate WebSocket sessions.

- One plain receive loop instead of channels' ``await_many_dispatch``, which builds a task and
  an ``asyncio.wait()`` per message (at 50–190 audio frames a second that adds up).
- The channel layer carries control only; an outage (Redis restarting) must not end live
  sessions. The layer's receive retries with backoff, and groups can be re-joined later.
- ``cleanup()`` runs on every way out of ``__call__``: a handler that raised, a disconnect,
  a cancellation by the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

log = logging.getLogger("realtime.layer")


class ResilientConsumer(AsyncWebsocketConsumer):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # As AsyncConsumer.__call__, but a channel-layer outage (Redis restarting) must not
        # end live sessions: their audio never touches the layer. Control messages resume
        # when it is back.
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        layer_task = None
        if self.channel_layer is not None:
            try:
                self.channel_name = await self.channel_layer.new_channel()
                layer_task = asyncio.create_task(self._layer_loop(), name="realtime-layer")
            except Exception as exc:  # the in-memory layer never fails; Redis may
                log.warning("channel layer unavailable at connect: %s", type(exc).__name__)
        try:
            # One plain loop instead of channels' await_many_dispatch, which builds a task
            # and an asyncio.wait() per message: at 50–190 frames a second that adds up.
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass
        finally:
            if layer_task is not None:
                layer_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopConsumer):
                    await layer_task
            await self.cleanup()

    async def _layer_loop(self) -> None:
        """Channel-layer messages (control only: terminate, broadcasts), dispatched as they come."""
        while True:
            await self.dispatch(await self._layer_receive())

    async def _layer_receive(self) -> dict[str, Any]:
        delay = 0.5
        while True:
            try:
                return await self.channel_layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("channel layer receive failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _join_groups(self) -> None:
        """(Re)join the broadcast group: at connect, and every heartbeat after an outage."""
        if self.channel_layer is None or not getattr(self, "channel_name", None):
            return
        try:
            for group in self.groups:
                await self.channel_layer.group_add(group, self.channel_name)
        except Exception as exc:
            log.warning("channel layer group_add failed: %s", type(exc).__name__)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.channel_layer is not None and getattr(self, "channel_name", None):
            for group in self.groups:
                with contextlib.suppress(Exception):  # best effort: groups also expire
                    await self.channel_layer.group_discard(group, self.channel_name)
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    async def cleanup(self) -> None:
        """Release everything the consumer owns; called once ``__call__`` ends, however."""
