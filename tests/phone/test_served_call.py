"""A scripted Twilio call against `manage.py serve` (daphne) over real sockets, on both API
families: forged webhook 403, signed webhook → stream → μ-law answer with marks → barge-in
clear → hang-up; the caller's number never reaches the log unmasked."""

from __future__ import annotations

import pytest

from tests.cli.conftest import serving
from tests.phone import scripted_call

pytestmark = pytest.mark.slow  # `manage.py serve` per test


@pytest.mark.parametrize("api", ["realtime", "live"])
async def test_a_call_through_daphne(tmp_path, api, capsys):
    token = "served-call-token"
    with serving(tmp_path, TWILIO_AUTH_TOKEN=token, RELAY_UPSTREAM_API=api) as served:
        base = f"http://127.0.0.1:{served.port}"
        assert await scripted_call.call(base, base, token) == 0
        printed = capsys.readouterr().out
        assert "forged webhook: HTTP 403" in printed and "barge-in: clear received" in printed
        assert "stream closed by the relay: code 1000" in printed
        output = served.stop()
    assert "from +4477*****123" in output and "+447700900123" not in output
    assert "the caller hung up" in output and token not in output
