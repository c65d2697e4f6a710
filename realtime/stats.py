"""Per-session counters, kept in memory on the frame path and flushed elsewhere."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from realtime.protocol import BYTES_PER_MS, Usage


@dataclass
class SessionStats:
    audio_bytes_in: int = 0
    audio_bytes_out: int = 0
    audio_bytes_dropped: int = 0
    text_messages: int = 0
    responses: int = 0
    speech_turns: int = 0
    barge_ins: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    cached_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0
    connect_ms: int | None = None
    close_code: int | None = None

    @property
    def audio_ms_in(self) -> int:
        return self.audio_bytes_in // BYTES_PER_MS

    @property
    def audio_ms_out(self) -> int:
        return self.audio_bytes_out // BYTES_PER_MS

    def add_usage(self, usage: Usage) -> None:
        """One response's usage: every token kind of ``Usage`` has a counter of that name."""
        self.responses += 1
        for field in fields(usage):
            name = field.name
            setattr(self, name, getattr(self, name) + getattr(usage, name))

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self) | {"audio_ms_in": self.audio_ms_in, "audio_ms_out": self.audio_ms_out}

    def summary(self) -> str:
        return (
            f"audio in {self.audio_ms_in} ms, out {self.audio_ms_out} ms, "
            f"{self.text_messages} texts, {self.responses} responses, "
            f"{self.barge_ins} barge-ins, {self.errors} errors, "
            f"tokens in {self.input_tokens} out {self.output_tokens}"
        )
