"""`manage.py talk` as a new user runs it against `manage.py serve`: the port from $PORT,
labelled lines, no audio file unless asked, help for --url, and a hint when login is needed."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
import wave
from pathlib import Path

import pytest

from realtime.management.talk_io import latency_line, tool_line

from .conftest import ROOT, Served, serving

pytestmark = pytest.mark.slow  # a served relay and a `talk` process per test

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
    # The answer's latency as the relay measured it (response_done's latency_ms).
    assert re.fullmatch(
        r"latency: first audio \d+ ms, first text \d+ ms, relay's share [\d.]+ ms "
        r"\(from the end of your turn\)",
        lines[3],
    ), lines
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
    [tool] = [i for i, line in enumerate(lines) if line.startswith("tool: ")]
    # get_current_time shows its arguments and result (show_arguments/show_result).
    assert lines[tool].startswith(
        'tool: get_current_time {"timezone": null} done → {"timezone": "UTC", "iso": '
    )
    assert lines[tool + 1].startswith("assistant: The get_current_time function returned")


@pytest.mark.parametrize("upstream_api", ["realtime", "live"])
def test_what_a_new_user_types_first_calls_the_tool(tmp_path: Path, upstream_api: str) -> None:
    """ "what time is it" is one of get_current_time's example phrases: the simulator calls the
    tool without its name being said; typed JSON is the call's arguments (both API families)."""
    with serving(tmp_path, RELAY_TOOLS="examples", RELAY_UPSTREAM_API=upstream_api) as relay:
        asked = talk(relay.env, tmp_path, "--text", "what time is it")
        tokyo = talk(
            relay.env, tmp_path, "--text", 'use get_current_time {"timezone":"Asia/Tokyo"}'
        )
    assert asked.returncode == 0, asked.stderr
    assert 'tool: get_current_time {"timezone": null} done → {"timezone": "UTC", ' in asked.stdout
    assert tokyo.returncode == 0, tokyo.stderr
    shown = 'tool: get_current_time {"timezone": "Asia/Tokyo"} done → {"timezone": "Asia/Tokyo", '
    assert shown in tokyo.stdout


def test_tool_lines_show_only_what_the_tool_allows() -> None:
    hidden = {"type": "tool_call", "name": "add_note", "call_id": "c1", "status": "done"}
    assert tool_line(hidden) == "tool: add_note done"
    refused = {**hidden, "status": "error", "error": "refused"}
    assert tool_line(refused) == "tool: add_note error: refused"
    shown = {**hidden, "arguments": {"text": "milk"}, "result": "kept"}
    assert tool_line(shown) == 'tool: add_note {"text": "milk"} done → kept'
    long = tool_line({**hidden, "result": "x" * 1000})
    assert long.endswith("x…") and len(long) < 330


def test_latency_lines_leave_out_what_does_not_apply() -> None:
    text_only = {"first_audio": None, "first_text": 412, "relay": None}
    assert latency_line(text_only) == "latency: first text 412 ms (from the end of your turn)"
    assert latency_line({"first_audio": None, "first_text": None, "relay": None}) == ""
    assert latency_line(None) == ""  # a relay without the extension


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


def test_talk_shows_a_renewal_between_two_messages_and_the_recall(tmp_path: Path) -> None:
    with serving(tmp_path, RELAY_UPSTREAM_MAX_SECONDS="2") as relay:
        result = talk(
            relay.env, tmp_path, "--text", "my name is Ada", "--pause", "10",
            "--text", "what did I say",
        )  # fmt: skip
        log = relay.output()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    renewed = [n for n, line in enumerate(lines) if line.startswith("relay: upstream session ")]
    assert renewed, result.stdout
    assert lines[renewed[0]] == (
        "relay: upstream session 2 took over (max_age); the conversation goes on"
    )
    asked = lines.index("you: what did I say")
    assert renewed[0] < asked
    assert lines[asked + 1].startswith('assistant: Earlier you said: "my name is Ada".')
    assert "upstream renewed (max_age)" in log


def test_talk_resumes_a_dropped_connection_and_the_model_still_recalls(
    relay: Served, tmp_path: Path
) -> None:
    """--drop-after 1: the socket goes away without a close frame after the first answer; talk
    reconnects with the resume token, gets the same session, and the recall has the words."""
    result = talk(
        relay.env, tmp_path, "--text", "my name is Ada", "--text", "what did I say",
        "--drop-after", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    dropped = lines.index("talk: dropping the connection (--drop-after)")
    assert lines[dropped + 1] == "relay: connection lost (code 1006); reconnecting…"
    assert lines[dropped + 2].startswith("relay: resumed session ")
    assert lines[dropped + 2].endswith("; the conversation goes on")
    assert lines[dropped + 3] == "you: what did I say"
    assert lines[dropped + 4].startswith('assistant: Earlier you said: "my name is Ada".')
    session_id = lines[dropped + 2].split()[3].rstrip(";")
    assert f"resumed as {session_id}" in relay.output()


def test_without_resume_a_dropped_connection_ends_talk(tmp_path: Path) -> None:
    with serving(tmp_path, RELAY_RESUME_SECONDS="0") as relay:
        result = talk(relay.env, tmp_path, "--text", "hi", "--text", "again", "--drop-after", "1")
    assert result.returncode != 0
    assert "reconnecting" not in result.stdout
    assert "the relay closed the session (code 1006)" in result.stderr


def _live_worker(db: Path, timeout: float = 30) -> int:
    """The pid of the worker serving the one live session, once its first answer is counted
    (rows are written every heartbeat)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db, timeout=10) as conn:
                found = conn.execute(
                    "SELECT worker_id FROM realtime_realtimesession "
                    "WHERE status = 'live' AND responses >= 1"
                ).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            found = []
        if found:
            return int(found[0][0].rsplit(":", 1)[1])
        time.sleep(0.2)
    raise AssertionError("no live session with an answer")


@pytest.mark.multiprocess
def test_talk_resumes_on_the_other_worker_when_its_worker_restarts(
    tmp_path: Path, redis_url: str
) -> None:
    """serve --workers 2 (Redis): the worker serving talk's session gets SIGTERM between two
    messages; talk hears 1012, resumes on a worker that is still there, and the recall works."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    with serving(
        tmp_path, "--workers", "2", REDIS_URL=redis_url, REDIS_CHANNEL_PREFIX=prefix,
        RELAY_HEARTBEAT_SECONDS="1", RELAY_DRAIN_SECONDS="5",
    ) as relay:  # fmt: skip
        deadline = time.monotonic() + 60
        while relay.output().count("Listening on TCP address") < 2:
            assert time.monotonic() < deadline, relay.output()
            time.sleep(0.1)
        proc = subprocess.Popen(
            [sys.executable, MANAGE, "talk", "--text", "my name is Ada", "--pause", "15",
             "--text", "what did I say"],
            cwd=tmp_path, env=relay.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            worker = _live_worker(tmp_path / "relay.sqlite3")
            os.kill(worker, signal.SIGTERM)  # during the pause: talk is listening
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    lost = lines.index("relay: connection lost (code 1012); reconnecting…")
    assert lines[lost + 1].startswith("relay: resumed session ")
    assert lines[lost + 2] == "you: what did I say"
    assert lines[lost + 3].startswith('assistant: Earlier you said: "my name is Ada".')
    assert "error server_restarting" in err
