"""Prometheus metrics: the metric objects, the per-session meter the consumer feeds, /metrics.

Frame path cost: nothing here runs per client frame. Frames, bytes, barge-ins, responses and
tokens are counted in the session's ``SessionCounters`` (realtime.kernel.counters, which also names
each counter's metric); a ``SessionMeter`` adds their *deltas* to the Prometheus counters in
batches: every ``FLUSH_INTERVAL_S`` (a timer per session), right before this process answers a
scrape, and when the session closes. Labelled children are bound once, at import.

Several worker processes: set ``PROMETHEUS_MULTIPROC_DIR`` (an empty directory shared by the
workers of one host, wiped at deploy) and any worker's /metrics reports the sum of all of them.
Without it, each process reports its own numbers (scrape each worker as its own target).
"""

from __future__ import annotations

import atexit
import hmac
import ipaddress
import os
import re
import weakref
from asyncio import TimerHandle, all_tasks, get_running_loop
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prom_multiprocess

from realtime.kernel.config import RelayConfig
from realtime.kernel.counters import COUNTERS, METRIC_FAMILIES, SessionCounters
from realtime.kernel.latency import Latency

FLUSH_INTERVAL_S = 5.0
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip()

# The session metrics say which edge a session came from (``edge``): every child is bound
# once, here, per edge (a meter picks its edge's at construction).
EDGES = ("browser", "phone")
ACTIVE_SESSIONS = Gauge(
    "relay_active_sessions",
    "Client sessions open now, by edge",
    ["edge"],
    multiprocess_mode="livesum",
)
SESSIONS_OPENED = Counter(
    "relay_sessions_opened", "Client sessions accepted (and connects refused), by edge", ["edge"]
)
SESSIONS_CLOSED = Counter(
    "relay_sessions_closed", "Client sessions ended, by edge and close reason", ["edge", "reason"]
)
PHONE_WEBHOOKS = Counter(
    "relay_phone_webhooks",
    "Phone calls offered by the telephony provider's webhook, by outcome",
    ["outcome"],
)
PHONE_CALLS = Counter("relay_phone_calls", "Phone calls whose media stream became a session")
CONNECT_SECONDS = Histogram(
    "relay_upstream_connect_seconds",
    "From the start of the upstream connect to a configured session (session.updated)",
    ["edge"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10),
)
REPLY_SECONDS = Histogram(
    "relay_reply_latency_seconds",
    "From the end of the user's turn (speech_stopped, commit or user_message) to the first "
    "reply audio written to the client",
    ["edge"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 5, 10),
)
REPLY_TEXT_SECONDS = Histogram(
    "relay_reply_text_latency_seconds",
    "From the end of the user's turn (speech_stopped, commit or user_message) to the first "
    "reply text delta written to the client",
    ["edge"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1, 1.25, 1.5, 2, 3, 5, 10),
)
REPLY_RELAY_SECONDS = Histogram(
    "relay_reply_relay_seconds",
    "The relay's own share of the first reply audio: upstream frame taken off the upstream "
    "socket to the client frame written",
    ["edge"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
UPSTREAM_ERRORS = Counter(
    "relay_upstream_errors", "Upstream error events, by the upstream's error code", ["code"]
)
UPSTREAM_RENEWALS = Counter(
    "relay_upstream_renewals",
    "Upstream sessions replaced without the client noticing, by reason: max_age (the timer, "
    "RELAY_UPSTREAM_MAX_SECONDS) or the upstream ending recovered from",
    ["reason"],
)
UPSTREAM_RENEWAL_FAILURES = Counter(
    "relay_upstream_renewal_failures",
    "Attempts to open a replacement upstream session that failed, by the renewal's reason",
    ["reason"],
)
CONVERSATION_ENTRIES_DROPPED = Counter(
    "relay_conversation_entries_dropped",
    "Conversation entries not written: rejected by the database one by one (the rest of "
    "their batch was written), or lost with a write that failed as a whole",
    ["reason"],
)
ASYNCIO_TASKS = Gauge(
    "relay_asyncio_tasks",
    "asyncio tasks alive on the worker's event loop (all of them, not only sessions'); "
    "updated when this worker answers a scrape: a leak shows as growth at a steady load",
    multiprocess_mode="livesum",
)


@dataclass(frozen=True)
class _EdgeMetrics:
    """One edge's children of the session metrics."""

    opened: Any
    active: Any
    connect: Any
    reply: Any
    reply_text: Any
    reply_relay: Any


_BY_EDGE = {
    edge: _EdgeMetrics(
        SESSIONS_OPENED.labels(edge),
        ACTIVE_SESSIONS.labels(edge),
        CONNECT_SECONDS.labels(edge),
        REPLY_SECONDS.labels(edge),
        REPLY_TEXT_SECONDS.labels(edge),
        REPLY_RELAY_SECONDS.labels(edge),
    )
    for edge in EDGES
}

# The session counters' families and one bound child per counter that has a metric (both
# from realtime.kernel.counters, the one definition of what a session counts).
_FAMILIES = {
    name: Counter(name, family.help, [family.label] if family.label else [])
    for name, family in METRIC_FAMILIES.items()
}
_METERED = tuple(c for c in COUNTERS if c.metric)
_CHILDREN = tuple(
    _FAMILIES[c.metric].labels(c.label) if c.label else _FAMILIES[c.metric]  # type: ignore[index]
    for c in _METERED
)
_NAMES = tuple(c.name for c in _METERED)


def family(name: str) -> Counter:
    """One of the session counters' Prometheus families, e.g. ``family("relay_audio_bytes")``."""
    return _FAMILIES[name]


_LABEL = re.compile(r"[a-z0-9_.]{1,48}")
_MAX_ERROR_CODES = 64
_error_children: dict[str, Any] = {}
_live: weakref.WeakSet[SessionMeter] = weakref.WeakSet()


def label(value: object) -> str:
    """A bounded, safe label value: short snake_case codes pass, anything else is "other"."""
    text = str(value or "").lower()
    return text if _LABEL.fullmatch(text) else "other"


def count_refusal(code: str, edge: str) -> None:
    """A connection refused before it became a session (auth, origin, limits, draining)."""
    _BY_EDGE[edge].opened.inc()
    SESSIONS_CLOSED.labels(edge, label(code)).inc()


def count_phone_webhook(outcome: str) -> None:
    """``answered``, ``forbidden`` (bad or no signature), ``refused`` (the policy),
    ``limited`` (a limit or budget would refuse the stream), ``unavailable`` (draining, no
    phone user, the token store or the policy failed)."""
    PHONE_WEBHOOKS.labels(label(outcome)).inc()


def count_dropped_entries(count: int, reason: str) -> None:
    """Conversation entries not written (``reason``: ``rejected`` or ``unavailable``)."""
    if count:
        CONVERSATION_ENTRIES_DROPPED.labels(reason).inc(count)


def count_upstream_error(code: object) -> None:
    name = label(code or "unknown")
    child = _error_children.get(name)
    if child is None:
        if len(_error_children) >= _MAX_ERROR_CODES:
            name = "other"
        child = _error_children.setdefault(name, UPSTREAM_ERRORS.labels(name))
    child.inc()


def count_renewal(reason: str) -> None:
    UPSTREAM_RENEWALS.labels(label(reason)).inc()


def count_renewal_failure(reason: str) -> None:
    UPSTREAM_RENEWAL_FAILURES.labels(label(reason)).inc()


class SessionMeter:
    """One session's metric state. The session calls ``opened`` when it starts, ``live`` once
    the upstream is configured, ``answer`` with each answer's latency,
    ``ended`` with its close reason and ``closed`` when it is released. Event-loop only.
    ``edge``: where the session's client came from (``EDGES``)."""

    __slots__ = (
        "__weakref__",
        "_edge",
        "_last",
        "_open",
        "_timer",
        "edge",
        "reason",
        "stats",
    )

    def __init__(self, stats: SessionCounters, edge: str = "browser") -> None:
        self.stats = stats
        self.edge = edge
        self._edge = _BY_EDGE[edge]
        self.reason: str | None = None
        # What the counters held when the meter started (a resumed session's counters carry
        # on from its earlier connections: only what it adds here is counted).
        self._last = self._values()
        self._timer: TimerHandle | None = None
        self._open = False

    def opened(self) -> None:
        self._open = True
        self._edge.opened.inc()
        self._edge.active.inc()
        _live.add(self)
        self._timer = get_running_loop().call_later(FLUSH_INTERVAL_S, self._tick)

    def live(self, connect_ms: int | None) -> None:
        if connect_ms is not None:
            self._edge.connect.observe(connect_ms / 1000)

    def answer(self, latency: Latency) -> None:
        """One answer's latency (``realtime.session.latency``), once, when it ended."""
        edge = self._edge
        if latency.first_audio is not None:
            edge.reply.observe(latency.first_audio / 1000)
        if latency.first_text is not None:
            edge.reply_text.observe(latency.first_text / 1000)
        if latency.relay is not None:
            edge.reply_relay.observe(latency.relay / 1000)

    def ended(self, reason: str) -> None:
        """The session's close reason (the first one given wins)."""
        if self.reason is None:
            self.reason = reason

    def closed(self) -> None:
        """Idempotent: final flush, close reason, active gauge."""
        if not self._open:
            return
        self._open = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        _live.discard(self)
        self.flush()
        SESSIONS_CLOSED.labels(self.edge, label(self.reason or "client_closed")).inc()
        self._edge.active.dec()

    def flush(self) -> None:
        values = self._values()
        for child, now, before in zip(_CHILDREN, values, self._last, strict=True):
            if now > before:
                child.inc(now - before)
        self._last = values

    def _values(self) -> tuple[int, ...]:
        stats = self.stats
        return tuple(getattr(stats, name) for name in _NAMES)

    def _tick(self) -> None:
        self._timer = None
        if self._open:
            self.flush()
            self._timer = get_running_loop().call_later(FLUSH_INTERVAL_S, self._tick)


def flush_all() -> None:
    """Bring this process's counters up to date with its open sessions."""
    for meter in list(_live):
        meter.flush()


def count_tasks() -> None:
    """Set relay_asyncio_tasks from the running loop (the /metrics view is async: it runs on the
    worker's loop). Called elsewhere without a loop, the gauge keeps its last value."""
    try:
        loop = get_running_loop()
    except RuntimeError:
        return
    ASYNCIO_TASKS.set(len(all_tasks(loop)))


def render() -> bytes:
    flush_all()
    count_tasks()
    if MULTIPROC_DIR:
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def setup_process() -> None:
    """Multiprocess mode: the shared directory exists, and this process's live gauge files
    are dropped on a clean exit (counters stay: they are totals). Called once per process
    when the ASGI application is built."""
    if MULTIPROC_DIR:
        os.makedirs(MULTIPROC_DIR, exist_ok=True)
        atexit.register(prom_multiprocess.mark_process_dead, os.getpid())


# ---------------------------------------------------------------------------------------------
# /metrics
# ---------------------------------------------------------------------------------------------


@never_cache
@require_safe
async def metrics_view(request: HttpRequest) -> HttpResponse:
    denied = await access_denied(request, request.relay.config)  # type: ignore[attr-defined]
    if denied is not None:
        return denied
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


async def access_denied(request: HttpRequest, config: RelayConfig) -> HttpResponse | None:
    """None when the request may read /metrics: a matching bearer token, loopback (unless
    RELAY_METRICS_ALLOW_LOOPBACK is off) or an active staff user; else 401/403."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    token = config.metrics_token
    if token and scheme.lower() == "bearer":
        if hmac.compare_digest(presented.strip().encode(), token.encode()):
            return None
    if config.metrics_allow_loopback and is_loopback(request.META.get("REMOTE_ADDR")):
        return None
    user = await request.auser()
    if user.is_active and user.is_staff:
        return None
    if not header and not user.is_authenticated:
        response = HttpResponse("authentication required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse("forbidden\n", status=403, content_type="text/plain")


def is_loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False
