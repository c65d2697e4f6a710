"""The upstream API key never reaches a client, a log record, a probe, /metrics or a page.

The relay is configured for a paid provider (OpenAI, Azure GA, Azure preview) whose endpoint is
the simulator started with that key, so the simulator refuses a connection without it. A
scripted set of sessions covers the paths that produce client messages and log lines:
greeting, text turn, audio turn, barge-in, bad client input, an injected upstream error, an
upstream 401 refusal and an upstream close mid-response. Every frame sent to a client (text and
binary) and every log record (all loggers, DEBUG, raw and rendered by the project's
JsonFormatter) is searched for the key, its random part and its base64 forms; so are the admin
pages of the session rows, /readyz, /metrics and the demo page. The simulator's record of the
handshake headers proves the key was really used (so the search can fail).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from realtime.kernel.config import load_config
from realtime.models import RealtimeSession
from realtime.ops.logs import JsonFormatter, SessionIdFilter
from realtime_simulator import Faults, Simulator
from tests.relay.conftest import Client, configure, relay_tasks, use_config, wav_pcm

pytestmark = pytest.mark.django_db(transaction=True)

SILENCE_1S = bytes(48000)


def needles(key: str) -> list[bytes]:
    """The key, its random part, and base64 (standard and URL-safe) of it at any alignment."""
    raw = key.encode()
    found = [raw, key.split("-")[-1].encode()]
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"x" * shift + raw)
            found.append(encoded[4:-4])  # the part that encodes key bytes only
    return found


def leaks(blob: bytes | str, key: str) -> list[str]:
    data = blob.encode("utf-8", "surrogatepass") if isinstance(blob, str) else blob
    return [n.decode() for n in needles(key) if n in data]


class RecordingClient(Client):
    """A relay client that also keeps every raw frame it received."""

    def __init__(self, sink: list[bytes | str]) -> None:
        super().__init__()
        self.sink = sink

    async def next(self, timeout: float = 5) -> dict[str, Any] | bytes:
        frame = await self.ws.receive_output(timeout)
        if frame["type"] == "websocket.close":
            self.close_code = frame.get("code", 1000)
            self.sink.append(json.dumps(frame))
            raise ConnectionError(f"closed with {self.close_code}")
        if frame.get("bytes") is not None:
            self.sink.append(frame["bytes"])
            self.audio += frame["bytes"]
            return frame["bytes"]
        self.sink.append(frame["text"])
        message = json.loads(frame["text"])
        self.messages.append(message)
        return message


class AllRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[AllRecords]:
    """Every record of every logger at DEBUG (``realtime``, ``django`` and ``websockets`` do
    not propagate to the root)."""
    handler = AllRecords()
    targets = [logging.getLogger(name) for name in (None, "realtime", "django", "websockets")]
    saved = [(logger, logger.level) for logger in targets]
    for logger in targets:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.fixture
async def keyed() -> AsyncIterator[tuple[Simulator, str]]:
    key = f"sk-test-{secrets.token_hex(20)}"
    sim = Simulator(api_key=key, pace="fast")
    await sim.start(host="127.0.0.1", port=0)
    try:
        yield sim, key
    finally:
        await sim.stop()


def provider_env(provider: str, simulator: Simulator, key: str) -> dict[str, str]:
    http = simulator.base_url.replace("ws://", "http://")
    if provider == "openai":
        return {"OPENAI_API_KEY": key, "OPENAI_ENDPOINT": simulator.base_url}
    env = {
        "AZURE_OPENAI_ENDPOINT": http,
        "AZURE_OPENAI_DEPLOYMENT": "secret-scan",
        "AZURE_OPENAI_API_KEY": key,
    }
    if provider == "azure_preview":
        env["AZURE_OPENAI_API_VERSION"] = "2025-04-01-preview"
    return env


async def scripted_sessions(sink: list[bytes | str], simulator: Simulator) -> None:
    # Greeting, text turn, audio turn, barge-in and bad input in one session.
    client = RecordingClient(sink)
    await client.connect()
    await client.until(action="session_info")
    await client.send_json({"type": "user_message", "text": "hello there"})
    await client.until(action="response_done")
    await client.send_audio(wav_pcm("hello_24k.wav") + SILENCE_1S)
    await client.until(type="transcription")
    await client.until(action="response_done")
    await client.send_json({"type": "user_message", "text": "tell me a long story " * 5})
    await client.until(action="audio_start")
    await client.send_audio(wav_pcm("hello_24k.wav")[:48000])
    await client.until(action="speech_started")
    await client.until(action="response_done")
    for frame in ("{not json", "\udcff", "[]", '{"type":"session.update"}', '{"type":"playback"}'):
        await client.ws.send_to(text_data=frame)
        await client.until(type="error")
    await client.ws.send_to(bytes_data=bytes(300 * 1024))  # too large: ends the session
    assert await client.until_closed() == 1009
    await client.close()

    # An injected upstream error (non-fatal).
    simulator.next_faults(
        Faults(inject_error_after="session.updated", inject_error_code="invalid_api_key")
    )
    client = RecordingClient(sink)
    await client.connect()
    assert (await client.until(type="error"))["code"] == "invalid_api_key"
    await client.close()

    # The upstream refuses the handshake with 401.
    simulator.next_faults(Faults(refuse_status=401))
    client = RecordingClient(sink)
    await client.connect(greeting=False)
    assert (await client.until(type="error"))["code"] == "upstream_auth_failed"
    assert await client.until_closed() == 4011
    await client.close()

    # The upstream closes mid-response (and is not recovered).
    configure(upstream_retries=0)
    simulator.next_faults(Faults(close_mid_response=True))
    client = RecordingClient(sink)
    await client.connect()
    await client.send_json({"type": "user_message", "text": "hi"})
    assert (await client.until(type="error"))["code"] == "upstream_closed"
    assert await client.until_closed() == 4012
    await client.close()


async def http_pages(django_user_model: Any) -> dict[str, bytes]:
    staff = await sync_to_async(django_user_model.objects.create_superuser)(
        "scan-admin", "scan@example.com", "scan-password-1"
    )
    http = AsyncClient()
    await http.aforce_login(staff)
    pages: dict[str, bytes] = {}
    paths = ["/", "/readyz", "/metrics", reverse("admin:realtime_realtimesession_changelist")]
    ids = await sync_to_async(list)(RealtimeSession.objects.values_list("id", flat=True))
    assert ids, "the sessions left no rows to inspect"
    paths += [reverse("admin:realtime_realtimesession_change", args=[i]) for i in ids]
    for path in paths:
        response = await http.get(path)
        assert response.status_code in (200, 503), (path, response.status_code)
        pages[path] = response.content
    return pages


def record_leaks(
    records: list[logging.LogRecord], key: str, skip: tuple[str, ...] = ()
) -> list[tuple[str, str, str]]:
    """Records (raw, and rendered by the project's JsonFormatter) that contain the key."""
    formatter, session_ids = JsonFormatter(), SessionIdFilter()
    found = []
    for record in records:
        if record.name.startswith(skip):
            continue
        session_ids.filter(record)
        raw = f"{record.getMessage()} {record.args!r} {record.exc_text or ''}"
        if leaks(raw, key) or leaks(formatter.format(record), key):
            found.append((record.name, record.levelname, record.getMessage()[:200]))
    return found


@pytest.mark.parametrize("provider", ["openai", "azure", "azure_preview"])
async def test_the_api_key_is_never_exposed(
    keyed: tuple[Simulator, str],
    settings: Any,
    records: AllRecords,
    django_user_model: Any,
    provider: str,
) -> None:
    simulator, key = keyed
    use_config(load_config(provider_env(provider, simulator, key)))
    sink: list[bytes | str] = []

    await scripted_sessions(sink, simulator)
    assert relay_tasks() == []

    # The key was really sent upstream, so finding nothing below means something.
    accepted = [c for c in simulator.connections if c.status == 101]
    assert accepted and all(
        key in (c.headers.get("authorization", "") + c.headers.get("api-key", ""))
        for c in simulator.connections
    )
    assert any(isinstance(f, bytes) and f for f in sink), "no reply audio was captured"

    frame_leaks = [(i, leaks(f, key)) for i, f in enumerate(sink) if leaks(f, key)]
    assert frame_leaks == [], "the key reached a client"

    assert records.records, "no log records were captured"
    # websockets.server is the simulator (it stands in for the provider and logs what it
    # received); websockets.client's handshake dump is redacted by
    # realtime.compat.websockets_redaction.
    found = record_leaks(records.records, key, skip=("websockets.server",))
    assert found == [], f"the key reached a log record: {found}"

    pages = await http_pages(django_user_model)
    page_leaks = {path: leaks(body, key) for path, body in pages.items() if leaks(body, key)}
    assert page_leaks == {}, "the key reached a page"


@pytest.mark.parametrize("provider", ["openai", "azure_preview"])
async def test_the_upstream_client_debug_log_does_not_carry_the_key(
    keyed: tuple[Simulator, str], settings: Any, records: AllRecords, provider: str
) -> None:
    simulator, key = keyed
    use_config(load_config(provider_env(provider, simulator, key)))
    client = Client()
    await client.connect()
    await client.close()
    assert simulator.connections[-1].status == 101
    client_records = [r for r in records.records if r.name.startswith("websockets.client")]
    assert client_records, "websockets.client logged nothing at DEBUG"
    assert record_leaks(client_records, key) == []
