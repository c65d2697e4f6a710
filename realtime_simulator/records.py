"""Per-connection records and fault switches (the simulator's public data types)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from typing import Any, Literal

FAULT_QUERY_PREFIX = "sim_"
FAULT_HEADER_PREFIX = "x-sim-fault-"


@dataclass
class Faults:
    """Fault switches for one connection. Also settable via ``sim_<name>`` query parameters
    (``sim_refuse`` for ``refuse_status``) or ``X-Sim-Fault-<name>`` headers (dashes or
    underscores)."""

    refuse_status: int | None = None
    close_mid_response: bool = False  # the same as close_mid_response_n=1
    close_mid_response_n: int = 0  # close 1011 in the middle of the n-th answer (0: never)
    stall_after: str | None = None
    first_event_delay_ms: int = 0
    inject_error_after: str | None = None
    inject_error_code: str = "simulated_error"
    expire_after_s: float | None = None

    @property
    def close_mid_answer(self) -> int:
        """The answer (1 = the first) in whose middle the connection drops; 0: none."""
        return self.close_mid_response_n or (1 if self.close_mid_response else 0)

    def merged(self, other: Faults) -> Faults:
        """Fields set (non-default) in ``other`` win."""
        result = Faults(**{f.name: getattr(self, f.name) for f in fields(self)})
        defaults = Faults()
        for f in fields(other):
            value = getattr(other, f.name)
            if value != getattr(defaults, f.name):
                setattr(result, f.name, value)
        return result

    @classmethod
    def from_request(cls, query: dict[str, str], headers: dict[str, str]) -> Faults:
        raw: dict[str, str] = {}
        for name, value in headers.items():
            if name.startswith(FAULT_HEADER_PREFIX):
                raw[name[len(FAULT_HEADER_PREFIX) :].replace("-", "_")] = value
        for name, value in query.items():
            if name.startswith(FAULT_QUERY_PREFIX):
                raw[name[len(FAULT_QUERY_PREFIX) :]] = value
        faults = cls()
        if "refuse" in raw or "refuse_status" in raw:
            faults.refuse_status = int(raw.get("refuse") or raw["refuse_status"])
        if "close_mid_response" in raw:
            faults.close_mid_response = raw["close_mid_response"].lower() in ("1", "true", "yes")
        if raw.get("close_mid_response_n"):
            faults.close_mid_response_n = int(raw["close_mid_response_n"])
        if raw.get("stall_after"):
            faults.stall_after = raw["stall_after"]
        if raw.get("first_event_delay_ms"):
            faults.first_event_delay_ms = int(raw["first_event_delay_ms"])
        if raw.get("inject_error_after"):
            faults.inject_error_after = raw["inject_error_after"]
        if raw.get("inject_error_code"):
            faults.inject_error_code = raw["inject_error_code"]
        if raw.get("expire_after_s"):
            faults.expire_after_s = float(raw["expire_after_s"])
        return faults


@dataclass
class ConnectionRecord:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    dialect: Literal["ga", "beta", "live"] | None = None
    route: Literal["openai", "azure_ga", "azure_preview", "openai_live", "azure_live"] | None = None
    status: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    closed_by: Literal["client", "server"] | None = None
    appends: int = 0
    faults: Faults = field(default_factory=Faults)
    # GPT-Live: one entry per utterance the voice spoke (kind, text, said, yielded, start_ms,
    # end_ms); the wire has no ids, so tests and relays read answers from here.
    spoken: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _returned: dict[str, int] = field(default_factory=dict, repr=False)

    def add_received(self, event: dict[str, Any]) -> None:
        self.received.append(event)
        self._changed.set()

    async def wait_for(self, event_type: str, timeout: float = 5) -> dict[str, Any]:
        """The next received client event of this type not yet returned by ``wait_for``
        (each call consumes one), waiting up to ``timeout`` seconds for it."""

        async def _wait() -> dict[str, Any]:
            while True:
                start = self._returned.get(event_type, 0)
                for index in range(start, len(self.received)):
                    if self.received[index].get("type") == event_type:
                        self._returned[event_type] = index + 1
                        return self.received[index]
                self._returned[event_type] = len(self.received)
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(_wait(), timeout)

    def sent_types(self) -> list[str]:
        return [e["type"] for e in self.sent]
