"""Which path served the sessions under daphne, and what the relay logged about it: the fast
path with every patch on; the plain ASGI path, with one warning naming daphne and its
version, when daphne changed what the fast path copies of it."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from tests.compat.daphne.served import SILENCE_1S, DaphneClient
from tests.relay.conftest import wav_pcm

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.mark.parametrize(("variant", "path"), [("daphne", "fast"), ("daphne-changed", "asgi")])
async def test_which_path_served_the_sessions_and_what_was_logged(upstream, relays, variant, path):
    served = relays(variant, "realtime")
    client = DaphneClient(served.port)
    await client.connect()
    await client.send_audio(wav_pcm("hello_24k.wav") + SILENCE_1S)
    await client.until(action="speech_started", timeout=30)  # a deadline: slow under load
    await client.close()
    other = "asgi" if path == "fast" else "fast"
    assert served.metric("relay_daphne_connections_total", path=path) >= 1
    assert served.metric("relay_daphne_connections_total", path=other) == 0
    active = 1.0 if path == "fast" else 0.0
    assert served.metric("relay_compat_patch_active", patch="daphne_fastpath") == active
    for patch in ("daphne_close_codes", "daphne_frame_guard", "twisted_eager_writes"):
        assert served.metric("relay_compat_patch_active", patch=patch) == 1.0
    warnings = [line for line in served.output().splitlines() if "compat:" in line]
    if path == "fast":
        assert warnings == []
    else:
        [warning] = warnings  # one, naming the patch, the package and its version
        assert "WARNING" in warning and "daphne_fastpath stays off" in warning
        assert f"daphne {version('daphne')}" in warning and "plain path" in warning
