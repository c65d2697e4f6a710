"""A session's counters: one definition, from which everything that counts is derived.

``COUNTERS`` lists every number a session keeps. From it come:
- ``SessionCounters``, the in-memory object the session increments on its hot paths;
- the heartbeat's row update (``columns``) of the ``RealtimeSession`` columns (``column``;
  written out in realtime/models.py, checked against this table by a test);
- the usage page's summed columns (``usage``);
- the Prometheus counters (``metric``/``label``, families in ``METRIC_FAMILIES``).
Adding a counter here adds it everywhere; one with a column also needs its field in
realtime/models.py and a migration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

BYTES_PER_MS = 48  # PCM16 mono 24 kHz


@dataclass(frozen=True, slots=True)
class Counter:
    name: str
    help: str
    column: str | None = None  # RealtimeSession column; None = kept in memory only
    per: int = 1  # the column stores value // per (audio bytes → milliseconds)
    big: bool = False  # BigIntegerField (else PositiveIntegerField)
    usage: bool = False  # summed per user and day on the usage page
    metric: str | None = None  # Prometheus counter family
    label: str | None = None  # its label value, for families with a label


@dataclass(frozen=True, slots=True)
class MetricFamily:
    help: str
    label: str | None = None


METRIC_FAMILIES = {
    "relay_audio_bytes": MetricFamily(
        "PCM16 audio bytes relayed: in = client to relay, out = relay to client", "direction"
    ),
    "relay_audio_frames": MetricFamily(
        "Binary audio frames relayed: in = client to relay, out = relay to client", "direction"
    ),
    "relay_audio_dropped_bytes": MetricFamily(
        "Client audio bytes dropped because the upstream lagged"
    ),
    "relay_responses": MetricFamily("Model responses finished (response.done)"),
    "relay_resumes": MetricFamily("Sessions resumed by their client after a lost socket"),
    "relay_barge_ins": MetricFamily("Reply audio cut short by the user (speech or interrupt)"),
    "relay_truncations": MetricFamily(
        "conversation.item.truncate/delete sent upstream after a barge-in"
    ),
    "relay_tokens": MetricFamily(
        "Tokens reported by the upstream (response.done usage), by kind; kinds add up to the total",
        "kind",
    ),
    "relay_cached_input_tokens": MetricFamily("Input tokens served from the cache"),
    "relay_upstream_seconds": MetricFamily(
        "Session time the upstream reported as billed (GPT-Live bills per second)"
    ),
    "relay_tool_calls": MetricFamily("Server-side tool calls run (RELAY_TOOLS)"),
    "relay_tool_errors": MetricFamily(
        "Tool calls that ended in an error (failed, refused, timed out, invalid arguments)"
    ),
    "relay_tool_milliseconds": MetricFamily("Time spent running tool calls, in milliseconds"),
}

_AUDIO = {"per": BYTES_PER_MS, "big": True, "usage": True, "metric": "relay_audio_bytes"}

COUNTERS: tuple[Counter, ...] = (
    Counter("input_tokens", "input tokens", "input_tokens", big=True, usage=True),
    Counter("output_tokens", "output tokens", "output_tokens", big=True, usage=True),
    *(
        Counter(
            f"{kind}_tokens",
            f"{kind.replace('_', ' ')} tokens",
            f"{kind}_tokens" if not kind.endswith("other") else None,
            big=True,
            usage=not kind.endswith("other"),
            metric="relay_tokens",
            label=kind,
        )
        for kind in (
            "input_text",
            "input_audio",
            "input_other",
            "output_text",
            "output_audio",
            "output_other",
        )
    ),
    Counter(
        "cached_tokens",
        "cached input tokens",
        "cached_tokens",
        big=True,
        usage=True,
        metric="relay_cached_input_tokens",
    ),
    Counter("audio_bytes_in", "client audio bytes", "audio_ms_in", label="in", **_AUDIO),
    Counter("audio_bytes_out", "reply audio bytes", "audio_ms_out", label="out", **_AUDIO),
    Counter("audio_bytes_dropped", "client audio dropped", metric="relay_audio_dropped_bytes"),
    Counter("frames_in", "client audio frames", metric="relay_audio_frames", label="in"),
    Counter("frames_out", "reply audio frames", metric="relay_audio_frames", label="out"),
    Counter("text_messages", "typed messages", "text_messages"),
    Counter("responses", "answers", "responses", usage=True, metric="relay_responses"),
    Counter("speech_turns", "user speech turns"),
    Counter("barge_ins", "answers cut short", "barge_ins", metric="relay_barge_ins"),
    Counter("truncations", "truncations sent upstream", metric="relay_truncations"),
    Counter("errors", "errors", "errors"),
    Counter(
        "upstream_seconds",
        "billed session seconds (GPT-Live)",
        "upstream_seconds",
        usage=True,
        metric="relay_upstream_seconds",
    ),
    # Upstream sessions replaced (realtime/session/renewal.py); Prometheus counts them by
    # reason in relay_upstream_renewals (metrics.py).
    Counter("upstream_renewals", "upstream renewals (timer)", "upstream_renewals"),
    Counter("upstream_recoveries", "upstream recoveries (failures)", "upstream_recoveries"),
    # The client came back after losing its socket (realtime/session/continuity.py).
    Counter("resumes", "resumes after a lost socket", "resumes", metric="relay_resumes"),
    Counter("tool_calls", "tool calls", "tool_calls", metric="relay_tool_calls"),
    Counter("tool_errors", "tool call errors", "tool_errors", metric="relay_tool_errors"),
    Counter(
        "tool_ms", "time in tool calls (ms)", "tool_ms", big=True, metric="relay_tool_milliseconds"
    ),
)

STORED = tuple(c for c in COUNTERS if c.column)
USAGE_COLUMNS = tuple(c.column for c in COUNTERS if c.usage and c.column)
TOKEN_KINDS = ("input_text", "input_audio", "output_text", "output_audio")

_Base = dataclasses.make_dataclass(
    "_Base", [(c.name, int, dataclasses.field(default=0)) for c in COUNTERS], slots=True
)


class SessionCounters(_Base):  # type: ignore[misc, valid-type]
    """One session's counters, incremented in memory; flushed by the heartbeat and metrics."""

    __slots__ = ()

    @property
    def audio_ms_in(self) -> int:
        return self.audio_bytes_in // BYTES_PER_MS

    @property
    def audio_ms_out(self) -> int:
        return self.audio_bytes_out // BYTES_PER_MS

    def add_usage(self, usage: Any) -> None:
        """One answer's token usage (a ``realtime.kernel.events.Usage``)."""
        self.responses += 1
        self.add_tokens(usage)

    def add_tokens(self, usage: Any) -> None:
        """Tokens used on the session's behalf (an answer's, or a backend model's)."""
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.cached_tokens += usage.cached_tokens
        for kind in TOKEN_KINDS:
            name = f"{kind}_tokens"
            setattr(self, name, getattr(self, name) + getattr(usage, name))
        self.input_other_tokens += max(
            0, usage.input_tokens - usage.input_text_tokens - usage.input_audio_tokens
        )
        self.output_other_tokens += max(
            0, usage.output_tokens - usage.output_text_tokens - usage.output_audio_tokens
        )

    def columns(self) -> dict[str, int]:
        """The stored counters as RealtimeSession column values."""
        return {c.column: getattr(self, c.name) // c.per for c in STORED}  # type: ignore[misc]

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def summary(self) -> str:
        return (
            f"audio in {self.audio_ms_in} ms, out {self.audio_ms_out} ms, "
            f"{self.text_messages} texts, {self.responses} responses, "
            f"{self.barge_ins} barge-ins, {self.errors} errors, "
            f"tokens in {self.input_tokens} out {self.output_tokens}"
        )
