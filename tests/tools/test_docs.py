"""docs/tools.md's examples work as written."""

from __future__ import annotations

import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from realtime.extensions.client_messages import (
    AddSystemMessage,
    ClientMessageError,
    client_messages,
    load_client_messages,
)
from realtime.models import RealtimeSession
from realtime.tools import Keypad, PhoneCall, load_tools

DOC = Path(__file__).resolve().parents[2] / "docs" / "tools.md"
TESTED = re.compile(r"<!-- tested: [^>]*-->\n```python\n(.*?)```", re.S)


def doc_blocks() -> list[str]:
    return TESTED.findall(DOC.read_text())


@pytest.fixture
def as_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def write(source: str) -> str:
        name = f"doc_example_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(source)
        made.append(name)
        return name

    yield write
    for name in made:
        sys.modules.pop(name, None)


def test_the_doc_has_its_three_tested_examples_and_the_tool_is_short() -> None:
    blocks = doc_blocks()
    assert len(blocks) == 3
    assert len(blocks[0].splitlines()) < 20


@pytest.mark.django_db(transaction=True)
async def test_the_tool_example(
    as_module: Callable[[str], str], django_user_model: Any, make_runner: Any
) -> None:
    registry = load_tools(as_module(doc_blocks()[0]))
    assert registry.names == ("count_my_sessions",)
    user = await django_user_model.objects.acreate(username="dora")
    await RealtimeSession.objects.acreate(user=user, provider="simulator", model="m", worker_id="w")

    mine = make_runner(registry, user=user)
    assert json.loads(await mine.run("c1", "count_my_sessions", "{}")) == {"days": 7, "sessions": 1}
    anonymous = make_runner(registry)
    assert json.loads(await anonymous.run("c2", "count_my_sessions", '{"days": 3}')) == {
        "error": "refused",
        "message": "Ask the user to sign in first.",
    }
    too_far = json.loads(await mine.run("c3", "count_my_sessions", '{"days": 365}'))
    assert too_far["error"] == "invalid_arguments"


@pytest.mark.django_db
async def test_the_keypad_pin_example(as_module: Callable[[str], str], make_runner: Any) -> None:
    registry = load_tools(as_module(doc_blocks()[1]))
    assert registry.names == ("verify_pin",)
    pad = Keypad()
    call = make_runner(registry, phone=PhoneCall("twilio", "CA1", "+4477*****123", "+15***06"),
                       keypad=pad)  # fmt: skip

    async def verify(account: str) -> Any:
        return json.loads(await call.run("c", "verify_pin", json.dumps({"account": account})))

    assert (await verify("4711"))["error"] == "refused"  # nothing typed yet
    for key in "1111#2580#":  # a wrong PIN, then the right one: the last entry counts
        pad.press(key)
    assert await verify("4711") == {"verified": True}
    assert await verify("4712") == {"verified": False}
    pad.press("9")  # typing again: the last complete entry still counts
    assert await verify("4711") == {"verified": True}
    browser = make_runner(registry)
    assert json.loads(await browser.run("c", "verify_pin", '{"account": "4711"}')) == {
        "error": "refused",
        "message": "A PIN can only be typed on a phone call.",
    }


def test_the_client_message_example(
    as_module: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The example registers into the process-wide registry: undo that after the test.
    monkeypatch.setattr(client_messages, "_types", dict(client_messages._types))
    module = as_module(doc_blocks()[2])
    messages = load_client_messages(f"system_message,{module}:set_topic")
    assert messages.parse("set_topic", {"type": "set_topic", "topic": "billing"}) == (
        AddSystemMessage("The conversation topic is now: billing")
    )
    with pytest.raises(ClientMessageError):
        messages.parse("set_topic", {"type": "set_topic", "topic": ""})
