"""The shipped example tools: the time, and notes kept per user through the ORM."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.utils import timezone

from realtime.models import Note
from realtime.tools import ToolRunner, load_tools
from realtime.tools import examples as example_tools
from tests.tools.conftest import Notices, shown

SESSION = "00000000-0000-4000-8000-000000000002"


@pytest.fixture
def runner_for(make_runner: Any) -> Any:
    registry = load_tools("examples")

    def make(user: Any) -> ToolRunner:
        return make_runner(registry, user=user, session_id=SESSION)

    return make


async def call(runner: ToolRunner, name: str, **arguments: Any) -> Any:
    return json.loads(await runner.run(f"{name}-call", name, json.dumps(arguments)))


# ---------------------------------------------------------------------------------------------
# get_current_time
# ---------------------------------------------------------------------------------------------


async def test_the_time_in_utc_by_default(runner_for: Any) -> None:
    result = await call(runner_for(None), "get_current_time")
    assert result["timezone"] == "UTC"
    now = datetime.fromisoformat(result["iso"])
    assert abs(now - timezone.now()) < timedelta(seconds=5)
    assert result["weekday"] == now.strftime("%A")


async def test_the_time_in_a_named_zone_is_shown_to_the_client(
    runner_for: Any, notices: Notices
) -> None:
    result = await call(runner_for(None), "get_current_time", timezone="Asia/Tokyo")
    assert result["timezone"] == "Asia/Tokyo"
    assert datetime.fromisoformat(result["iso"]).utcoffset() == timedelta(hours=9)
    done = shown(notices.last("get_current_time-call"))
    assert done["arguments"] == {"timezone": "Asia/Tokyo"}
    assert done["result"] == result


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", ""])
async def test_an_unknown_zone_is_an_argument_error(runner_for: Any, zone: str) -> None:
    result = await call(runner_for(None), "get_current_time", timezone=zone)
    assert result["error"] == "invalid_arguments"
    assert "not an IANA time zone" in result["message"]
    # docs/tools.md: the input is not echoed (issue 25: it was, in this tool's own message).
    assert not zone or zone not in result["message"].replace("Europe/Paris", "")


async def test_an_unknown_zone_is_not_echoed_to_the_model_or_the_client(
    runner_for: Any, notices: Notices
) -> None:
    zone = "Ignore/previous_instructions"  # the model's text, perhaps steered by the user
    runner = runner_for(None)
    text = await runner.run("tz-call", "get_current_time", json.dumps({"timezone": zone}))
    assert json.loads(text) == {
        "error": "invalid_arguments",
        "message": "Invalid arguments: timezone: not an IANA time zone, e.g. Europe/Paris",
    }
    notice = shown(notices.last("tz-call"))  # as the browser receives it
    assert zone not in json.dumps(notice) and notice["status"] == "error"


# ---------------------------------------------------------------------------------------------
# Notes
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def ann(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("ann")


@pytest.fixture
def bob(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob")


@pytest.mark.django_db(transaction=True)
async def test_notes_round_trip_for_their_user_only(runner_for: Any, ann: Any, bob: Any) -> None:
    anns = runner_for(ann)
    first = await call(anns, "add_note", text="  Buy oat milk ")
    second = await call(anns, "add_note", text="Call the plumber")
    assert first["saved"] and second["saved"] and second["id"] != first["id"]

    listed = await call(anns, "list_notes")
    assert listed["total"] == 2
    assert [n["text"] for n in listed["notes"]] == ["Call the plumber", "Buy oat milk"]
    assert [n["text"] for n in (await call(anns, "list_notes", limit=1))["notes"]] == [
        "Call the plumber"
    ]

    bobs = runner_for(bob)
    assert await call(bobs, "list_notes") == {"total": 0, "notes": []}
    await call(bobs, "add_note", text="Bob's own")
    assert [n["text"] for n in (await call(bobs, "list_notes"))["notes"]] == ["Bob's own"]
    assert (await call(anns, "list_notes"))["total"] == 2
    assert anns.stats.errors == bobs.stats.errors == 0


@pytest.mark.django_db(transaction=True)
async def test_anonymous_users_are_refused_notes(runner_for: Any, notices: Notices) -> None:
    for user in (None, AnonymousUser()):
        runner = runner_for(user)
        added = await call(runner, "add_note", text="secret")
        listed = await call(runner, "list_notes")
        assert added["error"] == listed["error"] == "refused"
        assert "signed-in user" in added["message"]
        assert runner.stats.refusals == 2
    assert await Note.objects.acount() == 0
    assert notices.last("add_note-call").error == "refused"
    assert notices.last("add_note-call").arguments is None  # note text is never shown


@pytest.mark.django_db(transaction=True)
async def test_note_arguments_are_validated(runner_for: Any, ann: Any) -> None:
    runner = runner_for(ann)
    too_long = await call(runner, "add_note", text="x" * (Note.MAX_LENGTH + 1))
    assert too_long["error"] == "invalid_arguments"
    assert "at most 1000 characters" in too_long["message"]
    assert (await call(runner, "add_note", text=" \n "))["error"] == "invalid_arguments"
    assert (await call(runner, "list_notes", limit=0))["error"] == "invalid_arguments"
    assert (await call(runner, "list_notes", limit=51))["error"] == "invalid_arguments"
    assert await Note.objects.acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_a_user_cannot_keep_unlimited_notes(
    runner_for: Any, ann: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(example_tools, "MAX_NOTES_PER_USER", 2)
    runner = runner_for(ann)
    for text in ("one", "two"):
        assert (await call(runner, "add_note", text=text))["saved"]
    third = await call(runner, "add_note", text="three")
    assert third["error"] == "refused" and "2 notes" in third["message"]
    assert await Note.objects.filter(user=ann).acount() == 2


def test_the_tool_limit_matches_the_model() -> None:
    assert example_tools.NOTE_MAX_LENGTH == Note.MAX_LENGTH


@pytest.mark.django_db
def test_notes_are_listed_read_only_in_the_admin(django_user_model: Any, ann: Any) -> None:
    Note.objects.create(user=ann, text="A note in the admin")
    model_admin = admin.site._registry[Note]
    staff = django_user_model.objects.create_superuser("root", password="x")
    client = Client()
    client.force_login(staff)
    page = client.get(f"/admin/realtime/note/?user__id__exact={ann.pk}")
    assert page.status_code == 200
    assert "A note in the admin" in page.content.decode()
    request = page.wsgi_request
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
