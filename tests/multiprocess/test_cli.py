"""`manage.py talk` against a relay served by `manage.py serve`, as a user would run them."""

from __future__ import annotations

import subprocess
import sys
import wave

import pytest

from tests.multiprocess.conftest import ROOT, free_port, wait_port

pytestmark = pytest.mark.multiprocess


def talk(env: dict, port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "talk", "--url", f"ws://127.0.0.1:{port}/realtime", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


@pytest.mark.both_apis
def test_talk_sends_text_and_saves_the_spoken_reply(deployment, tmp_path):
    _, port = deployment.start_worker()
    out = tmp_path / "reply.wav"
    result = talk(deployment.env, port, "--text", "hello", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "relay: You are now connected to the realtime relay." in result.stdout
    assert "You said: hello." in result.stdout
    with wave.open(str(out)) as wav:
        assert wav.getframerate() == 24000 and wav.getnframes() > 24000


@pytest.mark.both_apis
def test_talk_streams_a_wav_and_prints_the_transcription(deployment, tmp_path):
    _, port = deployment.start_worker()
    out = tmp_path / "reply.wav"
    wav_in = ROOT / "tests" / "fixtures" / "hello_48k.wav"
    result = talk(deployment.env, port, "--wav", str(wav_in), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "(speech started)" in result.stdout
    assert "you (transcribed): Simulated transcript of" in result.stdout
    with wave.open(str(out)) as wav:
        assert wav.getnframes() > 24000


def test_talk_gets_a_ticket_for_a_paid_upstream(deployment, tmp_path):
    """Realtime API only: the ticket is the relay's own (admission), the same on both."""
    sim_port = free_port()
    sim = subprocess.Popen(
        [sys.executable, "manage.py", "runsimulator", "--port", str(sim_port), "--pace", "fast",
         "--api-key", "sk-test-paid"],
        cwd=ROOT, env=deployment.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deployment.procs.append(sim)
    wait_port(sim_port, sim)
    paid = deployment.env | {
        "OPENAI_API_KEY": "sk-test-paid",
        "OPENAI_ENDPOINT": f"ws://127.0.0.1:{sim_port}",
        "RELAY_ALLOW_ANONYMOUS": "",
    }
    deployment.env.update(paid)
    _, port = deployment.start_worker()
    anonymous = talk(paid, port, "--text", "hi", "--out", str(tmp_path / "a.wav"))
    assert anonymous.returncode != 0
    assert "error auth_required" in anonymous.stderr and "code 1008" in anonymous.stderr
    logged_in = talk(
        paid | {"RELAY_PASSWORD": "admin-pw"},
        port, "--text", "hi", "--user", "admin", "--out", str(tmp_path / "b.wav"),
    )  # fmt: skip
    assert logged_in.returncode == 0, logged_in.stderr
    assert "You said: hi." in logged_in.stdout
    assert "sk-test-paid" not in logged_in.stdout + logged_in.stderr
