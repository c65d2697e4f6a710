"""Key presses on a call (Twilio's ``dtmf``): by default the model and the record are told
which key; the session policy's ``keypad`` hook may tell them something else or nothing (a
PIN), and a hook that fails never ends the call; tools read every key (``ToolContext``)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from realtime.extensions import keypad
from realtime.extensions.policy import SessionPolicy
from realtime.models import ConversationEntry
from realtime.tools import PhoneCall
from tests.phone import keypad_tools
from tests.phone.fake_twilio import CALLED, CALLER, answered_call, closed_rows, phone_on, ulaw
from tests.relay.conftest import wav_pcm
from tests.waiting import eventually_async

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]

PRESSES: list[keypad.KeyPress] = []


async def live_call(simulator: Any) -> Any:
    """An answered call whose upstream session (Realtime API) is configured; (the call, the
    simulator's record of its upstream session)."""
    call = await answered_call()
    await eventually_async(lambda: simulator.connections)
    record = simulator.connections[-1]
    await record.wait_for("session.update")
    return call, record


async def recorded_texts() -> list[str]:
    [row] = await closed_rows()
    return await sync_to_async(list)(
        ConversationEntry.objects.filter(session=row).values_list("text", flat=True)
    )


async def test_keypad_digits_reach_the_model_and_the_record(simulator):
    phone_on()
    call, record = await live_call(simulator)
    await call.press("5")
    item = await record.wait_for("conversation.item.create", timeout=5)
    assert "The caller pressed 5 on the keypad." in json.dumps(item)
    await call.hang_up()
    assert "The caller pressed 5 on the keypad." in await recorded_texts()


def pin_policy(user: Any, scope: Any) -> SessionPolicy:
    """A deployment's PIN line: the model hears that keys were pressed, never which."""
    return SessionPolicy(keypad=pin_entry)


def pin_entry(press: keypad.KeyPress) -> str | None:
    PRESSES.append(press)
    if press.digit == "#":
        return "The caller finished typing their PIN."
    return keypad.private(press)


async def test_a_private_pin_reaches_the_tool_the_model_calls_and_never_the_model(simulator):
    """On the Realtime API: the GPT-Live simulator does not recognise spoken fixtures, so its
    model never calls a tool from speech (docs/simulator.md)."""
    phone_on(tools="tests.phone.keypad_tools", session_policy="tests.phone.test_keypad.pin_policy")
    PRESSES.clear()
    keypad_tools.SEEN.clear()
    call, record = await live_call(simulator)
    for digit in "2580#":
        await call.press(digit)
    # The caller then asks; the simulated model calls the tool (its example phrase).
    await call.speak(ulaw(wav_pcm("what_time_24k.wav") + bytes(48 * 1000)))
    await eventually_async(lambda: keypad_tools.SEEN, timeout=15, what="the tool's call")
    [(keys, phone)] = keypad_tools.SEEN
    assert keys == "2580#"
    assert phone == PhoneCall("twilio", "CA" + "1" * 32, "+4477*****123", "+1500****006")
    await call.until("mark", timeout=15)  # the answer that used the tool's output
    [output] = [
        json.loads(e["item"]["output"])
        for e in record.received
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    ]
    assert output == {"verified": True}
    # The hook saw each press with the keys so far and the call (whole numbers: the policy's).
    assert [(p.digit, p.digits) for p in PRESSES] == [
        ("2", "2"), ("5", "25"), ("8", "258"), ("0", "2580"), ("#", "2580#")
    ]  # fmt: skip
    assert PRESSES[0].call["caller"] == CALLER and PRESSES[0].call["called"] == CALLED
    # Nothing upstream and nothing in the record names a digit of the PIN.
    sent = json.dumps(record.received)
    assert sent.count("The caller pressed a key on the keypad.") == 4
    assert "finished typing their PIN" in sent and "2580" not in sent
    await call.hang_up()
    texts = await recorded_texts()
    assert "The caller finished typing their PIN." in texts
    assert not any("2580" in text or "pressed 2" in text for text in texts)


def failing(press: keypad.KeyPress) -> str | None:
    raise LookupError("the PIN service is down")


def not_text(press: keypad.KeyPress) -> Any:
    return {"note": press.digit}


async def slow(press: keypad.KeyPress) -> str:
    await asyncio.sleep(60)
    return keypad.announce(press)


def silent(press: keypad.KeyPress) -> None:
    return None


def hook_policy(user: Any, scope: Any) -> SessionPolicy:
    return SessionPolicy(keypad=HOOKS[scope["relay_phone"]["called"]])


HOOKS = {"failing": failing, "not_text": not_text, "slow": slow, "silent": silent}


@pytest.mark.parametrize("hook", ["failing", "not_text", "slow", "silent"])
async def test_a_keypad_hook_that_fails_never_ends_the_call_nor_tells_the_digit(
    simulator, caplog, monkeypatch, hook
):
    """A hook that raises, returns something else or takes too long is logged, and the key is
    noted without its digit (it may have been guarding a PIN); one that returns None tells the
    model and the record nothing. Either way the call goes on: its next answer comes."""
    monkeypatch.setattr(keypad, "HOOK_TIMEOUT_S", 0.2)
    monkeypatch.setitem(HOOKS, CALLED, HOOKS[hook])
    phone_on(session_policy="tests.phone.test_keypad.hook_policy")
    call, record = await live_call(simulator)
    with caplog.at_level(logging.ERROR, logger="realtime.extensions.keypad"):
        await call.press("7")
        await call.speak(ulaw(wav_pcm("hello_24k.wav") + bytes(48 * 1000)))
        await call.until("mark", timeout=15)  # the call goes on: an answer to the caller
    notes = [e for e in record.received if "keypad" in json.dumps(e)]
    logged = [r for r in caplog.records if r.name == "realtime.extensions.keypad"]
    if hook == "silent":
        assert notes == [] and logged == []
    else:
        assert "The caller pressed a key on the keypad." in json.dumps(notes)
        [line] = logged
        assert "keypad hook" in line.getMessage() and "withheld" in line.getMessage()
    assert "pressed 7" not in json.dumps(record.received)
    await call.hang_up()
    assert not any("7" in text and "keypad" in text for text in await recorded_texts())
