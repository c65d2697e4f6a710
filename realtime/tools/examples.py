"""The shipped example tools (``RELAY_TOOLS=examples``): the time, and per-user notes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from realtime.tools.context import ToolContext, ToolRefused
from realtime.tools.registry import tool

MAX_NOTES_PER_USER = 500
NOTE_MAX_LENGTH = 1000  # realtime.models.Note.MAX_LENGTH (not imported: see _notes())


def _known_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # The name is not repeated: a tool error never echoes its input (docs/tools.md).
        raise PydanticCustomError(
            "unknown_time_zone", "not an IANA time zone, e.g. Europe/Paris"
        ) from None
    return name


TimeZoneName = Annotated[str, Field(max_length=64), AfterValidator(_known_zone)]


@tool(
    show_arguments=True,
    show_result=True,
    timeout=2,
    examples=["what time is it", "what's the time", "what day is it"],
)
async def get_current_time(
    timezone: Annotated[
        TimeZoneName | None,
        Field(description="An IANA time zone such as Europe/Paris; default UTC."),
    ] = None,
) -> dict[str, str]:
    """The current date and time, in a given IANA time zone or in UTC."""
    zone = ZoneInfo(timezone or "UTC")
    now = datetime.now(zone)
    return {
        "timezone": zone.key,
        "iso": now.isoformat(timespec="seconds"),
        "weekday": now.strftime("%A"),
    }


def _notes() -> Any:
    # Imported on call: this module may be imported before Django's apps are loaded.
    from realtime.models import Note

    return Note


@tool(examples=["take a note", "add a note"])
def add_note(
    ctx: ToolContext,
    text: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=NOTE_MAX_LENGTH),
        Field(description="The note to keep."),
    ],
) -> dict[str, Any]:
    """Keep a short note for the signed-in user, to read back later with list_notes."""
    user = ctx.require_user("Notes need a signed-in user; ask the user to sign in first.")
    note_model = _notes()
    # A soft cap: two concurrent calls may pass it by one, which is harmless.
    if note_model.objects.filter(user=user).count() >= MAX_NOTES_PER_USER:
        raise ToolRefused(f"The user already has {MAX_NOTES_PER_USER} notes, the most allowed.")
    note = note_model.objects.create(user=user, text=text)
    ctx.log.info("session %s: note %s added", ctx.session_id, note.pk)
    return {"id": note.pk, "saved": True, "created_at": note.created_at.isoformat()}


@tool(examples=["read my notes", "list my notes"])
def list_notes(
    ctx: ToolContext,
    limit: Annotated[int, Field(ge=1, le=50, description="How many, newest first.")] = 10,
) -> dict[str, Any]:
    """The signed-in user's notes, newest first."""
    user = ctx.require_user("Notes need a signed-in user; ask the user to sign in first.")
    notes = _notes().objects.filter(user=user)
    return {
        "total": notes.count(),
        "notes": [
            {"id": note.pk, "text": note.text, "created_at": note.created_at.isoformat()}
            for note in notes[:limit]
        ],
    }
