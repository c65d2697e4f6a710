"""`manage.py talk` as a new user runs it against `manage.py serve`: the port from $PORT,
labelled lines, no audio file unless asked, help for --url, and a hint when login is needed."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

from .conftest import ROOT, Served, serving

MANAGE = str(ROOT / "manage.py")


def talk(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, MANAGE, "talk", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def test_talk_finds_the_relay_on_port_and_says_who_speaks(relay: Served, tmp_path: Path) -> None:
    # No --url: $PORT, as `serve` reads it. Run from an empty directory to see what it writes.
    result = talk(relay.env, tmp_path, "--text", "hello")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "relay: You are now connected to the realtime relay."
    assert lines[1] == "you: hello"
    assert lines[2] == "assistant: You said: hello. This is the simulator speaking."
    assert lines[-1].startswith("reply audio: ") and "not saved" in lines[-1]
    assert list(tmp_path.iterdir()) == []  # no reply.wav unless asked


def test_talk_saves_the_reply_only_with_out(relay: Served, tmp_path: Path) -> None:
    out = tmp_path / "answer.wav"
    result = talk(relay.env, tmp_path, "--text", "hi", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"→ {out}" in result.stdout
    with wave.open(str(out)) as wav:
        assert wav.getframerate() == 24000 and wav.getnframes() > 24000
    assert list(tmp_path.iterdir()) == [out]


def test_talk_labels_speech_and_tool_calls(tmp_path: Path) -> None:
    with serving(tmp_path, RELAY_TOOLS="examples") as relay:
        wav = ROOT / "tests" / "fixtures" / "what_time_24k.wav"
        result = talk(relay.env, tmp_path, "--wav", str(wav))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "you: (speech started)" in lines
    assert "you (transcribed): What time is it, use get current time." in lines
    assert "tool: get_current_time done" in lines
    tool = lines.index("tool: get_current_time done")
    assert lines[tool + 1].startswith("assistant: The get_current_time function returned")


def test_help_documents_url_and_out(tmp_path: Path) -> None:
    result = talk({"PATH": "/usr/bin:/bin"}, tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--url URL the relay's WebSocket URL" in text
    assert "ws://127.0.0.1:$PORT/realtime" in text
    assert "--out OUT save the reply audio to this WAV file (default: not saved)" in text
    readme = (ROOT / "README.md").read_text()
    assert "talk --url" in readme and "$PORT" in readme


def test_a_login_required_refusal_suggests_user(tmp_path: Path) -> None:
    with serving(tmp_path, RELAY_ALLOW_ANONYMOUS="false") as relay:
        result = talk(relay.env, tmp_path, "--text", "hi")
    assert result.returncode != 0
    assert "error auth_required" in result.stderr
    assert "code 1008" in result.stderr
    assert "run again with --user NAME" in result.stderr


def test_wav_outputs_are_ignored_by_git_but_fixtures_are_not() -> None:
    def ignored(path: str) -> bool:
        check = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        return check.returncode == 0

    assert ignored("reply.wav") and ignored("out/answer.wav")
    assert not ignored("tests/fixtures/hello_24k.wav")
    assert not ignored("tests/fixtures/a_new_fixture.wav")
    assert not ignored("realtime_simulator/utterances/weather_24k.wav")
