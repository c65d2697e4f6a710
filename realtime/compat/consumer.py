"""A Channels WebSocket consumer base for long-lived, high-rate sessions.

Channels' stock ``AsyncConsumer`` (checked against channels 4.3.2) costs, per message:
- ``await_many_dispatch``: a task and an ``asyncio.wait()`` for every frame;
- ``dispatch``: ``await aclose_old_connections()``, a hop to the database thread, before
  every handler. At 50–190 audio frames a second per session that dominates the relay.
``DirectWebsocketConsumer`` dispatches each client message directly from one plain receive
loop, and channel-layer messages from one task of their own. Code that uses the ORM closes
old connections itself (``realtime.compat.asgiref.db_call``).

The channel layer carries control only; an outage (Redis restarting) must not end live
sessions: the layer's receive retries with backoff, and groups can be re-joined later.
``cleanup()`` runs on every way out of ``__call__``: a handler that raised, a disconnect, a
cancellation by the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from realtime.compat import redis_pools

log = logging.getLogger("realtime.layer")


class DirectWebsocketConsumer(AsyncWebsocketConsumer):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = scope
        self.base_send = send
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        layer_task = None
        if self.channel_layer is not None:
            try:
                self.channel_name = await self.channel_layer.new_channel()
                layer_task = asyncio.create_task(self._layer_loop(), name="realtime-layer")
            except Exception as exc:  # the in-memory layer never fails; Redis may
                redis_pools.unreachable("channel layer at connect", exc)
        try:
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

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except StopConsumer:
            raise
        except Exception:
            await self.handler_failed(message)
            raise StopConsumer() from None

    async def handler_failed(self, message: dict[str, Any]) -> None:
        """A handler raised: log it and end the connection (subclasses tell the client)."""
        log.exception("consumer: unexpected error in %s", message["type"])

    async def _layer_loop(self) -> None:
        """Channel-layer messages (control only: terminate, broadcasts), dispatched as they come."""
        while True:
            await self.dispatch(await self._layer_receive())

    async def _layer_receive(self) -> dict[str, Any]:
        delay = 0.5
        while True:
            try:
                message = await self.channel_layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reported once per outage, not per consumer and retry
                redis_pools.unreachable("channel layer receive, retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            else:
                redis_pools.answered()
                return message

    def _layer_deadline(self) -> asyncio.Timeout:
        """A bound on one channel-layer operation as a whole: the layer's ``timeout`` (the
        Redis layer, ``RELAY_REDIS_TIMEOUT_SECONDS``); none for the in-memory layer."""
        return asyncio.timeout(getattr(self.channel_layer, "timeout", None))

    async def join_groups(self) -> None:
        """(Re)join the broadcast groups: at connect, and every heartbeat after an outage.
        Fails open within the layer's timeout: a hung Redis delays a connect by at most that."""
        if self.channel_layer is None or not getattr(self, "channel_name", None):
            return
        if not redis_pools.may_try("channel layer groups"):
            return  # Redis is down: a later heartbeat joins (one try every few seconds)
        try:
            async with self._layer_deadline():
                for group in self.groups:
                    await self.channel_layer.group_add(group, self.channel_name)
        except Exception as exc:
            redis_pools.unreachable("channel layer group_add", exc)
        else:
            redis_pools.answered()

    async def leave_groups(self) -> None:
        if self.channel_layer is not None and getattr(self, "channel_name", None):
            with contextlib.suppress(Exception):  # best effort: groups also expire
                async with self._layer_deadline():
                    for group in self.groups:
                        await self.channel_layer.group_discard(group, self.channel_name)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.connect()  # groups are joined by the subclass, once it admits the client

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        await self.leave_groups()
        await self.disconnect(message.get("code", 1000))
        raise StopConsumer()

    async def cleanup(self) -> None:
        """Release everything the consumer owns; called once ``__call__`` ends, however."""
