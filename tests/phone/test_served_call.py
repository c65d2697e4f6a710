"""A scripted Twilio call against `manage.py serve` (daphne) over real sockets, on both API
families: forged webhook 403, signed webhook → stream → μ-law answer with marks → barge-in
clear → a key press → hang-up, counted under the phone edge; the same number calling again
over its connects a minute hears why; the caller's number never reaches the log unmasked."""

from __future__ import annotations

import pytest

from tests.cli.conftest import serving
from tests.phone import scripted_call

pytestmark = pytest.mark.slow  # `manage.py serve` per test


@pytest.mark.parametrize("api", ["realtime", "live"])
async def test_a_call_through_daphne(tmp_path, api, capsys):
    token = "served-call-token"
    env = {"TWILIO_AUTH_TOKEN": token, "RELAY_UPSTREAM_API": api}
    with serving(tmp_path, RELAY_MAX_CONNECTS_PER_MINUTE="1", **env) as served:
        base = f"http://127.0.0.1:{served.port}"
        assert await scripted_call.call(base, base, token) == 0
        printed = capsys.readouterr().out
        assert "forged webhook: HTTP 403" in printed and "barge-in: clear received" in printed
        assert "stream closed by the relay: code 1000" in printed
        assert 'relay_sessions_opened_total{edge="phone"} 1.0' in printed
        assert 'relay_sessions_closed_total{edge="phone",reason="client_closed"} 1.0' in printed
        assert "second call from the same number: HTTP 200, refused: 'Sorry, this number has" in (
            printed
        )
        output = served.stop()
    assert "from +4477*****123" in output and "+447700900123" not in output
    assert "the caller hung up" in output and token not in output
    assert "refused (too_many_connects)" in output
