"""RELAY_CLIENT_MESSAGES: allow-listed client extension messages and their validation."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from realtime.extensions.client_messages import (
    AddSystemMessage,
    ClientMessageError,
    ClientMessageRegistry,
    ClientMessagesConfigError,
    MessageLimits,
    load_client_messages,
)
from realtime.kernel.commands import ClientProtocolError
from realtime.kernel.config import ConfigError


def test_off_by_default() -> None:
    messages = load_client_messages("")
    assert messages.enabled == ()
    assert messages.parse("system_message", {"type": "system_message", "text": "hi"}) is None


def test_system_message_when_enabled() -> None:
    messages = load_client_messages(" system_message , ")
    assert messages.enabled == ("system_message",)
    command = messages.parse("system_message", {"type": "system_message", "text": "Be formal."})
    assert command == AddSystemMessage(text="Be formal.")
    assert messages.parse("user_message", {"type": "user_message", "text": "x"}) is None


@pytest.mark.parametrize(
    ("message", "code", "complaint"),
    [
        ({}, "missing_field", "text: Field required"),
        ({"text": None}, "invalid_field", "text: Input should be a valid string"),
        ({"text": 42}, "invalid_field", "text: Input should be a valid string"),
        ({"text": " \n "}, "invalid_field", "text: must not be empty"),
        ({"text": "x" * 11}, "invalid_field", "text: must be at most 10 characters"),
    ],
)
def test_system_message_validation(message: dict[str, Any], code: str, complaint: str) -> None:
    messages = load_client_messages("system_message", limits=MessageLimits(max_text_chars=10))
    assert messages.parse("system_message", {"text": "x" * 10}) == AddSystemMessage("x" * 10)
    with pytest.raises(ClientMessageError) as caught:
        messages.parse("system_message", {"type": "system_message", **message})
    assert caught.value.code == code
    assert caught.value.message == f"system_message: {complaint}"
    assert isinstance(caught.value, ClientProtocolError)  # reported like any bad message


def test_config_errors_name_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClientMessagesConfigError) as caught:
        load_client_messages("system_message,set_mood")
    assert str(caught.value).startswith("RELAY_CLIENT_MESSAGES: no client message type 'set_mood'")
    assert "system_message" in str(caught.value)
    assert isinstance(caught.value, ConfigError)
    with pytest.raises(ClientMessagesConfigError, match="RELAY_CLIENT_MESSAGES: cannot import"):
        load_client_messages("no.such.module:set_mood")


@pytest.mark.parametrize("name", ["user_message", "playback", "interrupt", "Bad-Name", ""])
def test_canonical_or_malformed_names_cannot_be_registered(name: str) -> None:
    with pytest.raises(ValueError, match="client message type"):
        ClientMessageRegistry().message(name, payload=BaseModel)


# ---------------------------------------------------------------------------------------------
# A custom message: the documented way to add one
# ---------------------------------------------------------------------------------------------


class SetTopic(BaseModel):
    topic: str = Field(min_length=1, max_length=80)
    priority: Literal["low", "high"] = "low"


custom = ClientMessageRegistry()


@custom.message("set_subject", payload=SetTopic)
def set_subject(payload: SetTopic) -> AddSystemMessage:
    return AddSystemMessage(f"Topic ({payload.priority}): {payload.topic}")


def test_a_custom_message_round_trip() -> None:
    messages = load_client_messages("set_subject", registry=custom)
    assert messages.parse(
        "set_subject", {"type": "set_subject", "topic": "cats"}
    ) == AddSystemMessage("Topic (low): cats")
    with pytest.raises(ClientMessageError) as caught:
        messages.parse("set_subject", {"topic": "cats", "priority": "urgent"})
    assert caught.value.code == "invalid_field"
    assert "priority" in caught.value.message and "urgent" not in caught.value.message
    with pytest.raises(ClientMessagesConfigError):
        load_client_messages("set_subject")  # registered in `custom`, not in the default registry


@pytest.fixture
def message_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    module, name = f"relay_messages_{uuid.uuid4().hex[:8]}", f"mood_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(f'''
            from pydantic import BaseModel
            from realtime.extensions.client_messages import AddSystemMessage, client_message

            class Mood(BaseModel):
                mood: str

            @client_message("{name}", payload=Mood)
            def mood(payload: Mood) -> AddSystemMessage:
                return AddSystemMessage("The user feels " + payload.mood)
        ''')
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield module, name
    sys.modules.pop(module, None)


def test_a_module_named_in_the_variable_registers_its_messages(
    message_module: tuple[str, str],
) -> None:
    module, name = message_module
    messages = load_client_messages(f"system_message,{module}:{name}")
    assert messages.enabled == ("system_message", name)
    assert messages.parse(name, {"mood": "curious"}) == AddSystemMessage("The user feels curious")


# ---------------------------------------------------------------------------------------------
# Fuzzing: any JSON object gives a command or a clean validation error, nothing else
# ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=120),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(["type", "topic", "priority", "text", "extra"]) | st.text(max_size=10)
messages_ = st.dictionaries(keys, json_values, max_size=5)
enabled = load_client_messages("set_subject", registry=custom)
system = load_client_messages("system_message", limits=MessageLimits(max_text_chars=50))


@given(message=messages_)
def test_fuzzed_custom_messages_only_ever_fail_cleanly(message: dict[str, Any]) -> None:
    try:
        command = enabled.parse("set_subject", message)
    except ClientMessageError as exc:
        assert exc.code in ("missing_field", "invalid_field")
        assert exc.message.startswith("set_subject: ")
    else:
        assert isinstance(command, AddSystemMessage)
        assert isinstance(message.get("topic"), str) and 1 <= len(message["topic"]) <= 80


@given(message=messages_)
def test_fuzzed_system_messages_only_ever_fail_cleanly(message: dict[str, Any]) -> None:
    try:
        command = system.parse("system_message", message)
    except ClientMessageError as exc:
        assert exc.code in ("missing_field", "invalid_field")
    else:
        assert command == AddSystemMessage(message["text"])
        assert message["text"].strip() and len(message["text"]) <= 50


@given(kind=st.text(max_size=20), message=messages_)
def test_fuzzed_types_that_are_not_enabled_are_none(kind: str, message: dict[str, Any]) -> None:
    if kind != "system_message":
        assert system.parse(kind, message) is None
