"""/metrics: access rules, and numbers that match a scripted session run through the simulator."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import AsyncClient
from prometheus_client import REGISTRY

from realtime_simulator import Faults
from tests.relay.conftest import Client, configure, wav_pcm
from tests.waiting import eventually_async

REMOTE = "203.0.113.9"
SILENCE_1S = bytes(48000)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Snapshot:
    """Metric values before a scenario; ``delta`` gives what the scenario added."""

    NAMES = (
        ("relay_sessions_opened_total", {"edge": "browser"}),
        ("relay_sessions_closed_total", {"edge": "browser", "reason": "client_closed"}),
        ("relay_sessions_closed_total", {"edge": "browser", "reason": "upstream_unavailable"}),
        ("relay_active_sessions", {"edge": "browser"}),
        ("relay_audio_frames_total", {"direction": "in"}),
        ("relay_audio_frames_total", {"direction": "out"}),
        ("relay_audio_bytes_total", {"direction": "in"}),
        ("relay_audio_bytes_total", {"direction": "out"}),
        ("relay_upstream_connect_seconds_count", {"edge": "browser"}),
        ("relay_reply_latency_seconds_count", {"edge": "browser"}),
        ("relay_reply_latency_seconds_sum", {"edge": "browser"}),
        ("relay_reply_text_latency_seconds_count", {"edge": "browser"}),
        ("relay_reply_text_latency_seconds_sum", {"edge": "browser"}),
        ("relay_reply_relay_seconds_count", {"edge": "browser"}),
        ("relay_reply_relay_seconds_sum", {"edge": "browser"}),
        ("relay_barge_ins_total", {}),
        ("relay_truncations_total", {}),
        ("relay_responses_total", {}),
        ("relay_upstream_errors_total", {"code": "rate_limit_exceeded"}),
    )
    TOKEN_KINDS = (
        "input_text",
        "input_audio",
        "input_other",
        "output_text",
        "output_audio",
        "output_other",
    )

    def __init__(self) -> None:
        self.before = self.read()

    def read(self) -> dict[str, float]:
        values = {self.key(n, lb): value(n, **lb) for n, lb in self.NAMES}
        values["tokens"] = sum(value("relay_tokens_total", kind=k) for k in self.TOKEN_KINDS)
        return values

    @staticmethod
    def key(name: str, labels: dict[str, str]) -> str:
        """``name/label…``, e.g. ``relay_sessions_closed_total/client_closed`` (every session
        metric here is the browser edge's: its ``edge`` is left out)."""
        return name + "".join(f"/{v}" for k, v in labels.items() if k != "edge")

    def delta(self) -> dict[str, float]:
        now = self.read()
        return {k: now[k] - self.before[k] for k in now}


class CountingClient(Client):
    """Counts the binary frames it receives and the bytes and frames it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.frames_received = 0
        self.frames_sent = 0
        self.bytes_sent = 0

    async def next(self, timeout: float = 5) -> dict[str, Any] | bytes:
        message = await super().next(timeout)
        if isinstance(message, bytes):
            self.frames_received += 1
        return message

    async def send_audio(self, pcm: bytes, frame_bytes: int = 960, realtime: bool = False) -> None:
        self.frames_sent += -(-len(pcm) // frame_bytes)
        self.bytes_sent += len(pcm)
        await super().send_audio(pcm, frame_bytes, realtime)

    async def drain(self, quiet: float = 0.5) -> None:
        """Read until the relay has been silent for ``quiet`` seconds (without the
        communicator's timeout, which would cancel the consumer)."""
        while not await self.ws.receive_nothing(quiet):
            await self.next()


async def get_metrics(*, remote: bool = False, token: str | None = None) -> Any:
    """GET /metrics through the full ASGI stack, from loopback or from a remote address."""
    headers = [(b"host", b"testserver")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    client = [REMOTE, 40000] if remote else ["127.0.0.1", 40000]
    return await AsyncClient().request(
        method="GET", path="/metrics", query_string="", headers=headers, client=client
    )


async def scrape(*, remote: bool = False, token: str | None = None) -> tuple[int, str]:
    response = await get_metrics(remote=remote, token=token)
    return response.status_code, response.content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("relay_config")
async def test_metrics_follow_a_scripted_session_turn_barge_in_and_error(simulator, settings):
    configure(playback_report_wait_ms=100)
    simulator.next_faults(
        Faults(inject_error_after="session.updated", inject_error_code="rate_limit_exceeded")
    )
    snap = Snapshot()
    client = CountingClient()
    await client.connect()

    # An upstream error (non-fatal), then a spoken turn answered with audio.
    error = await client.until(type="error")
    assert error["code"] == "rate_limit_exceeded"
    await client.send_audio(wav_pcm("hello_24k.wav") + SILENCE_1S)
    await client.until(action="response_done")

    # Mid-session scrape: this process flushes its open sessions first.
    status, text = await scrape()
    assert status == 200
    assert snap.delta()["relay_active_sessions"] == 1
    assert "relay_audio_bytes_total" in text and "relay_reply_latency_seconds_bucket" in text

    # A barge-in: the user talks over a long answer; the relay truncates it upstream.
    await client.send_json({"type": "user_message", "text": "tell me a long story " * 5})
    await client.until(action="audio_start")
    await client.send_audio(wav_pcm("hello_24k.wav") + SILENCE_1S)
    await client.until(action="speech_started")
    record = simulator.connections[-1]
    await record.wait_for("conversation.item.truncate", timeout=3)
    await client.drain()
    await client.close()
    await eventually_async(lambda: snap.delta()["relay_sessions_closed_total/client_closed"])

    d = snap.delta()
    assert d["relay_sessions_opened_total"] == 1
    assert d["relay_sessions_closed_total/client_closed"] == 1
    assert d["relay_active_sessions"] == 0
    assert d["relay_upstream_connect_seconds_count"] == 1
    assert d["relay_upstream_errors_total/rate_limit_exceeded"] == 1
    # Frames and bytes, both directions, exactly as sent and received.
    assert d["relay_audio_frames_total/in"] == client.frames_sent
    assert d["relay_audio_bytes_total/in"] == client.bytes_sent
    assert d["relay_audio_frames_total/out"] == client.frames_received
    assert d["relay_audio_bytes_total/out"] == len(client.audio)
    # One barge-in, one truncation (or delete) sent upstream.
    cuts = [
        e
        for e in record.received
        if e["type"] in ("conversation.item.truncate", "conversation.item.delete")
    ]
    assert d["relay_barge_ins_total"] == 1 and d["relay_truncations_total"] == len(cuts) == 1
    # Responses and tokens as the client was told in response_done.
    done = client.of("control", "response_done")
    assert d["relay_responses_total"] == len(done) >= 2
    assert d["tokens"] == sum(m["usage"]["total_tokens"] for m in done) > 0
    # Each answer to a turn (spoken: from speech_stopped; typed: from the user_message) was
    # timed to its first reply audio and text, as the client was told in response_done.
    figures = [m["latency_ms"] for m in done]
    audio = [f["first_audio"] for f in figures if f["first_audio"] is not None]
    text = [f["first_text"] for f in figures if f["first_text"] is not None]
    relay = [f["relay"] for f in figures if f["relay"] is not None]
    assert len(audio) >= 2 and len(relay) == len(audio) and len(text) >= 1
    assert d["relay_reply_latency_seconds_count"] == len(audio)
    assert d["relay_reply_latency_seconds_sum"] == pytest.approx(sum(audio) / 1000)
    assert d["relay_reply_text_latency_seconds_count"] == len(text)
    assert d["relay_reply_relay_seconds_count"] == len(relay)
    assert d["relay_reply_relay_seconds_sum"] == pytest.approx(sum(relay) / 1000)
    assert all(r < a for r, a in zip(relay, audio, strict=True))  # a share of the wait


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("relay_config")
async def test_a_session_refused_upstream_is_counted_by_its_close_reason(simulator):
    simulator.next_faults(Faults(refuse_status=503))
    snap = Snapshot()
    errors_before = value("relay_upstream_errors_total", code="upstream_unavailable")
    client = CountingClient()
    await client.connect(greeting=False)
    assert await client.until_closed() == 4010
    await eventually_async(lambda: snap.delta()["relay_sessions_closed_total/upstream_unavailable"])
    d = snap.delta()
    assert d["relay_sessions_opened_total"] == 1
    assert d["relay_sessions_closed_total/upstream_unavailable"] == 1
    assert d["relay_sessions_closed_total/client_closed"] == 0
    assert d["relay_upstream_connect_seconds_count"] == 0
    assert d["relay_active_sessions"] == 0
    errors = value("relay_upstream_errors_total", code="upstream_unavailable") - errors_before
    assert errors == 1  # a refused connect is an upstream error too


# ---------------------------------------------------------------------------------------------
# Access
# ---------------------------------------------------------------------------------------------


async def test_metrics_are_open_to_loopback():
    status, text = await scrape()
    assert status == 200 and "relay_sessions_opened_total" in text


@pytest.mark.django_db
async def test_metrics_ask_a_remote_anonymous_caller_to_authenticate():
    response = await get_metrics(remote=True)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
async def test_metrics_accept_the_bearer_token_and_refuse_a_wrong_one():
    configure(metrics_token="metrics-token-0123456789")
    ok = await scrape(remote=True, token="metrics-token-0123456789")
    assert ok[0] == 200
    wrong = await scrape(remote=True, token="metrics-token-x")
    assert wrong[0] == 403


@pytest.mark.django_db
async def test_no_token_configured_means_no_bearer_access():
    configure(metrics_token="")
    status, _ = await scrape(remote=True, token="")
    assert status == 403


@pytest.mark.django_db
async def test_loopback_can_be_switched_off():
    configure(metrics_allow_loopback=False)
    assert (await scrape())[0] == 401


@pytest.mark.django_db
def test_metrics_are_open_to_staff_and_closed_to_other_users(client, django_user_model):
    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    user = django_user_model.objects.create_user("someone", password="x")
    client.force_login(staff)
    assert client.get("/metrics", REMOTE_ADDR=REMOTE).status_code == 200
    client.force_login(user)
    assert client.get("/metrics", REMOTE_ADDR=REMOTE).status_code == 403
