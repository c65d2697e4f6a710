"""Conversation items: create, delete, retrieve, truncate, and the item events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import events as ev
from .errors import ClientError

if TYPE_CHECKING:
    from .session import Session


class ConversationItems:
    """Mixin for Session; everything here runs on the session's state."""

    def find_item(self: Session, item_id: Any) -> dict[str, Any] | None:
        for item in self.items:
            if item["id"] == item_id:
                return item
        return None

    def public_item(self: Session, item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    async def add_item(self: Session, item: dict[str, Any], previous: str | None) -> None:
        self.items.append(item)
        public = self.public_item(item)
        if self.dialect == "ga":
            await self.send(
                ev.event("conversation.item.added", previous_item_id=previous, item=public)
            )
            await self.send(
                ev.event("conversation.item.done", previous_item_id=previous, item=public)
            )
        else:
            await self.send(
                ev.event("conversation.item.created", previous_item_id=previous, item=public)
            )

    async def _on_item_create(self: Session, data: dict[str, Any]) -> None:
        item = data.get("item")
        if not isinstance(item, dict):
            raise ClientError(
                "missing_required_parameter", "Missing required parameter: 'item'.", "item"
            )
        kind = item.get("type")
        if kind not in ("message", "function_call", "function_call_output"):
            raise ClientError("invalid_value", f"Invalid item type: {kind!r}.", "item.type")
        if kind == "message":
            if item.get("role") not in ("user", "assistant", "system"):
                raise ClientError("invalid_value", "Invalid message role.", "item.role")
            if not isinstance(item.get("content"), list):
                raise ClientError(
                    "missing_required_parameter",
                    "Missing required parameter: 'item.content'.",
                    "item.content",
                )
        if kind == "function_call_output" and "call_id" not in item:
            raise ClientError(
                "missing_required_parameter",
                "Missing required parameter: 'item.call_id'.",
                "item.call_id",
            )
        item = {**item, "object": "realtime.item", "status": item.get("status", "completed")}
        item.setdefault("id", ev.new_id("item"))
        if self.find_item(item["id"]) is not None:
            raise ClientError(
                "item_create_duplicate_id",
                f"Item with id '{item['id']}' already exists.",
                "item.id",
            )
        previous = data.get("previous_item_id")
        if previous is not None and self.find_item(previous) is None:
            raise ClientError(
                "invalid_value",
                f"Previous item with id '{previous}' does not exist.",
                "previous_item_id",
            )
        if previous is None and self.items:
            previous = self.items[-1]["id"]
        await self.add_item(item, previous)

    async def _on_item_delete(self: Session, data: dict[str, Any]) -> None:
        item = self.find_item(data.get("item_id"))
        if item is None:
            raise ClientError(
                "item_delete_invalid_item_id",
                f"Error deleting item: the item with id '{data.get('item_id')}' does not exist.",
                "item_id",
            )
        self.items.remove(item)
        await self.send(ev.event("conversation.item.deleted", item_id=item["id"]))

    async def _on_item_retrieve(self: Session, data: dict[str, Any]) -> None:
        item = self.find_item(data.get("item_id"))
        if item is None:
            raise ClientError(
                "item_retrieve_invalid_item_id",
                f"Error retrieving item: the item with id '{data.get('item_id')}' does not exist.",
                "item_id",
            )
        await self.send(ev.event("conversation.item.retrieved", item=self.public_item(item)))

    async def _on_item_truncate(self: Session, data: dict[str, Any]) -> None:
        item_id = data.get("item_id")
        item = self.find_item(item_id)
        if item is None or item.get("role") != "assistant" or item_id not in self.audio_ms:
            raise ClientError(
                "item_truncate_invalid_item_id",
                f"Only assistant messages with audio can be truncated; no such item: '{item_id}'.",
                "item_id",
            )
        content_index = data.get("content_index", 0)
        if content_index != 0:
            raise ClientError(
                "invalid_value", "Invalid 'content_index': must be 0.", "content_index"
            )
        end_ms = data.get("audio_end_ms")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise ClientError(
                "invalid_value", "Invalid 'audio_end_ms': expected a non-negative integer.",
                "audio_end_ms",
            )  # fmt: skip
        produced = self.audio_ms[item_id]
        if end_ms > produced:
            raise ClientError(
                "invalid_value",
                f"Audio content of {produced}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
            )
        self.audio_ms[item_id] = end_ms
        for part in item.get("content", []):
            if "transcript" in part:
                part["transcript"] = ""
        await self.send(
            ev.event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=0,
                audio_end_ms=end_ms,
            )
        )
