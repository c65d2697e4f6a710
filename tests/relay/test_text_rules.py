"""Issue 25, finding 1: text that JSON accepts but nothing after it can take (a lone surrogate,
NUL) is refused where it enters, and the session, its row and its record go on.

Before: a ``user_message`` holding ``"\\udfff"`` killed the session's presence task (the row
went stale while the session talked on) and, on GPT-Live, its writer (no reply, no error);
``"\\u0000"`` went upstream and into the records (where PostgreSQL refused the whole batch).
"""

from __future__ import annotations

import gc
import json

import pytest
from asgiref.sync import sync_to_async

from realtime.edge.protocol import ClientProtocolError, parse_client_text
from realtime.kernel import text as textrules
from realtime.models import ConversationEntry, RealtimeSession
from tests.relay.conftest import Client, configure

pytestmark = [pytest.mark.usefixtures("relay_config"), pytest.mark.django_db(transaction=True)]

BAD = pytest.mark.parametrize(
    "bad, shown", [("\udfff", "U+DFFF"), ("\x00", "U+0000")], ids=["lone_surrogate", "nul"]
)


def _row_and_typed(session_id: str) -> tuple[RealtimeSession, list[str]]:
    row = RealtimeSession.objects.get(id=session_id)
    typed = ConversationEntry.objects.filter(
        session_id=session_id, kind__in=["typed", "system_message"]
    )
    return row, [entry.text for entry in typed.order_by("seq")]


@BAD
@pytest.mark.parametrize(
    "message, field",
    [
        ({"type": "user_message", "text": "hi {bad} there"}, "text"),
        ({"type": "system_message", "text": "be {bad} brief"}, "text"),
        ({"type": "playback", "item_id": "item{bad}", "played_ms": 10}, "item_id"),
    ],
    ids=["user_message", "system_message", "playback"],
)
@pytest.mark.both_apis
async def test_invalid_text_is_refused_and_the_session_its_row_and_record_go_on(
    simulator, upstream_api, caplog, bad, shown, message, field
):
    configure(heartbeat_seconds=0.2, client_messages="system_message")
    client = Client()
    await client.connect()
    info = await client.until(action="session_info")
    frame = {
        key: value.format(bad=bad) if isinstance(value, str) else value
        for key, value in message.items()
    }
    await client.ws.send_to(text_data=json.dumps(frame))  # "\udfff" / "\u0000" escapes: valid JSON
    error = await client.until(type="error")
    assert error["code"] == "invalid_field" and error["fatal"] is False
    assert repr(field) in error["message"] and shown in error["message"]
    await client.send_json({"type": "user_message", "text": "still there?"})
    done = await client.until(action="response_done")
    assert done["status"] == "completed"
    received = simulator.connections[-1].received
    assert not any(bad in json.dumps(event, ensure_ascii=False) for event in received)
    await client.close()

    row, typed = await sync_to_async(_row_and_typed)(info["session_id"])
    assert (row.status, row.close_reason) == ("closed", "client_closed")
    assert typed == ["still there?"]  # the record was written: nothing poisoned it
    gc.collect()
    assert "never retrieved" not in caplog.text
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_every_string_of_a_message_is_checked_keys_and_nested_ones_included():
    for frame, where in [
        ('{"type":"user_message","text":"a\\u0000"}', "'text'"),
        ('{"type":"x","deep":{"list":[1,"ok","\\udfff"]}}', "'deep.list[2]'"),
        ('{"type":"x","\\ud800":1}', "'object (a key)'"),
        ('{"type":"user_\\u0000message","text":"hi"}', "'type'"),
    ]:
        with pytest.raises(ClientProtocolError) as refused:
            parse_client_text(frame)
        assert refused.value.code == "invalid_field"
        assert refused.value.message.startswith(where)
        assert "\x00" not in refused.value.message
        refused.value.message.encode("utf-8")  # the error itself can be sent
    # A proper surrogate pair is one character, and valid.
    assert parse_client_text('{"type":"user_message","text":"\\ud83d\\ude00"}').text == "😀"


def test_cleaning_replaces_what_cannot_be_stored():
    assert textrules.clean("a\x00b\udfffc") == "a\ufffdb\ufffdc"
    assert textrules.clean_json({"k\x00": ["x\ud800", 1, None]}) == {
        "k\ufffd": ["x\ufffd", 1, None]
    }
    assert textrules.problem("fine 😀") is None
    assert textrules.find_invalid([[[["\x00"]]]]) == ("[0][0][0][0]", textrules.problem("\x00"))
