"""RELAY_SESSION_POLICY: loading the hook, the default, sync and async policies."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser

from realtime.extensions.policy import (
    PolicyConfigError,
    PolicyError,
    SessionPolicy,
    default_policy,
    load_policy,
    resolve_policy,
)
from realtime.kernel.config import ConfigError, RelayConfig, load_config

SCOPE: dict[str, Any] = {"type": "websocket", "path": "/realtime"}


@pytest.fixture
def policy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module with a sync and an async policy; its import name is returned."""
    name = f"relay_policy_{uuid.uuid4().hex[:10]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent("""
            from realtime.extensions.policy import SessionPolicy

            def by_group(user, scope):
                if user.is_authenticated and user.groups.filter(name="staff-voice").exists():
                    return SessionPolicy(voice="verse", tools={"list_notes"})
                return SessionPolicy(tools=set(), max_session_seconds=300)

            async def by_path(user, scope):
                return SessionPolicy(instructions=f"You serve {scope['path']}.")

            def broken(user, scope):
                raise LookupError("no profile")

            def wrong(user, scope):
                return {"voice": "verse"}

            NOT_CALLABLE = 42
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_the_default_policy_keeps_the_configuration() -> None:
    assert load_policy("") is default_policy
    assert load_policy(None) is default_policy
    policy = default_policy(AnonymousUser(), SCOPE)
    assert policy == SessionPolicy()
    assert policy.config_overrides() == {}
    assert policy.allowed_tools(["a", "b"]) == {"a", "b"}


def test_overrides_are_relay_config_fields() -> None:
    policy = SessionPolicy(
        instructions="Be brief.",
        voice="verse",
        tools=["a"],
        max_session_seconds=600,
        idle_timeout_seconds=60,
        max_messages_per_minute=5,
    )
    overrides = policy.config_overrides()
    assert set(overrides) <= {f.name for f in dataclasses.fields(RelayConfig)}
    config = dataclasses.replace(load_config({}), **overrides)
    assert (config.instructions, config.voice, config.max_session_seconds) == (
        "Be brief.",
        "verse",
        600,
    )
    assert config.idle_timeout_seconds == 60 and config.max_messages_per_minute == 5


def test_the_tools_subset_keeps_only_registered_names(caplog: pytest.LogCaptureFixture) -> None:
    policy = SessionPolicy(tools=["list_notes", "gone"])
    assert policy.tools == frozenset({"list_notes", "gone"})
    assert policy.allowed_tools(["list_notes", "add_note"]) == {"list_notes"}
    assert "gone" in caplog.text
    assert SessionPolicy(tools=[]).allowed_tools(["a"]) == frozenset()


@pytest.mark.parametrize(
    "fields",
    [
        {"voice": ""},
        {"instructions": 3},
        {"tools": "list_notes"},
        {"tools": [1]},
        {"max_session_seconds": -1},
        {"max_session_seconds": 86_401},
        {"max_messages_per_minute": True},
        {"idle_timeout_seconds": 1.5},
        {"keypad": "realtime.extensions.keypad.private"},  # a callable, not its name
    ],
)
def test_invalid_policies_fail_loudly(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="SessionPolicy"):
        SessionPolicy(**fields)


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("nowhere.policy", "cannot import 'nowhere.policy'"),
        ("nodots", "cannot import 'nodots'"),
        ("{module}.missing", "cannot import '{module}.missing'"),
        ("{module}.NOT_CALLABLE", "'{module}.NOT_CALLABLE' is not callable"),
    ],
)
def test_load_errors_name_the_variable(policy_module: str, path: str, complaint: str) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        load_policy(path.format(module=policy_module))
    message = str(caught.value)
    assert message.startswith("RELAY_SESSION_POLICY: ")
    assert complaint.format(module=policy_module) in message
    assert isinstance(caught.value, ConfigError)


@pytest.mark.django_db(transaction=True)
async def test_a_sync_policy_may_use_the_orm(policy_module: str, django_user_model: Any) -> None:
    def make_users() -> tuple[Any, Any]:
        staff = django_user_model.objects.create_user("sam")
        staff.groups.create(name="staff-voice")
        return staff, django_user_model.objects.create_user("pat")

    staff, plain = await asyncio.to_thread(make_users)
    policy = load_policy(f"{policy_module}.by_group")
    assert await resolve_policy(policy, staff, SCOPE) == SessionPolicy(
        voice="verse", tools=frozenset({"list_notes"})
    )
    restricted = await resolve_policy(policy, plain, SCOPE)
    assert restricted.allowed_tools(["list_notes"]) == frozenset()
    assert restricted.config_overrides() == {"max_session_seconds": 300}


async def test_an_async_policy_is_awaited(policy_module: str) -> None:
    policy = load_policy(f"{policy_module}.by_path")
    result = await resolve_policy(policy, AnonymousUser(), SCOPE)
    assert result.instructions == "You serve /realtime."


@pytest.mark.django_db  # a sync policy runs through database_sync_to_async
async def test_a_failing_policy_is_a_policy_error(policy_module: str) -> None:
    with pytest.raises(PolicyError, match="LookupError: no profile"):
        await resolve_policy(load_policy(f"{policy_module}.broken"), AnonymousUser(), SCOPE)
    with pytest.raises(PolicyError, match="returned dict, not SessionPolicy"):
        await resolve_policy(load_policy(f"{policy_module}.wrong"), AnonymousUser(), SCOPE)
