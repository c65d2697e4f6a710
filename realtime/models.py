"""The session registry: one row per client session, on whichever worker it lives."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class RealtimeSessionQuerySet(models.QuerySet["RealtimeSession"]):
    def live(self) -> RealtimeSessionQuerySet:
        """Sessions that are open (connecting or live) on some worker."""
        return self.filter(status__in=RealtimeSession.OPEN_STATUSES)

    def attached(self) -> RealtimeSessionQuerySet:
        """Open sessions that a worker serves now (connecting or live; not detached)."""
        return self.filter(status__in=RealtimeSession.ATTACHED_STATUSES)

    def on_worker(self, worker_id: str) -> RealtimeSessionQuerySet:
        return self.filter(worker_id=worker_id)

    def of_users(self, users: models.QuerySet) -> RealtimeSessionQuerySet:
        return self.filter(user__in=users)

    def heard_since(self, cutoff: timezone.datetime) -> RealtimeSessionQuerySet:
        return self.filter(last_seen_at__gte=cutoff)

    def silent_since(self, cutoff: timezone.datetime) -> RealtimeSessionQuerySet:
        return self.attached().filter(last_seen_at__lt=cutoff)


class SessionCounterColumns(models.Model):
    """The counter columns: one per stored counter of ``realtime.kernel.counters.COUNTERS``
    (its ``column``; ``big`` ones are BigIntegerField), in the order of that table. The
    heartbeat writes them (``SessionCounters.columns``); tests/registry/test_counter_columns.py
    checks they and the table agree. A new stored counter needs its field here and a migration.
    """

    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    input_text_tokens = models.BigIntegerField(default=0)
    input_audio_tokens = models.BigIntegerField(default=0)
    output_text_tokens = models.BigIntegerField(default=0)
    output_audio_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    audio_ms_in = models.BigIntegerField(default=0)
    audio_ms_out = models.BigIntegerField(default=0)
    text_messages = models.PositiveIntegerField(default=0)
    responses = models.PositiveIntegerField(default=0)
    barge_ins = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    upstream_seconds = models.PositiveIntegerField(default=0)
    upstream_renewals = models.PositiveIntegerField(default=0)
    upstream_recoveries = models.PositiveIntegerField(default=0)
    resumes = models.PositiveIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    tool_errors = models.PositiveIntegerField(default=0)
    tool_ms = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class RealtimeSession(SessionCounterColumns):
    class Status(models.TextChoices):
        CONNECTING = "connecting", "connecting"
        LIVE = "live", "live"
        CLOSED = "closed", "closed"
        STALE = "stale", "stale (worker gone)"
        DETACHED = "detached", "detached (waiting for its client)"

    # Open: counted by the limits and the budgets. A detached session holds its slot while it
    # waits for its client (RELAY_RESUME_SECONDS); it has no worker beating for it.
    OPEN_STATUSES = (Status.CONNECTING, Status.LIVE, Status.DETACHED)
    ATTACHED_STATUSES = (Status.CONNECTING, Status.LIVE)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="realtime_sessions",
    )
    client_addr = models.CharField(max_length=64, blank=True)
    origin = models.CharField(max_length=255, blank=True)
    user_agent = models.CharField(max_length=255, blank=True)
    provider = models.CharField(max_length=16)
    model = models.CharField(max_length=100)
    worker_id = models.CharField(max_length=128, db_index=True)
    channel_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.CONNECTING, db_index=True
    )
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    close_code = models.PositiveIntegerField(null=True, blank=True)
    close_reason = models.CharField(max_length=64, blank=True)
    ended_by = models.CharField(max_length=150, blank=True)
    # The upstream sessions that served the conversation, once there was more than one
    # (realtime/session/renewal.py): [{"n", "id", "started_at", "ended_at", "ended"}, …].
    upstreams = models.JSONField(default=list, blank=True)
    # Its answers' latency (realtime/session/latency.py), written with the heartbeats:
    # {"connect_ms", "answers": [[first_audio, first_text, relay] ms, …] (the most recent 500),
    #  "counts": {"first_audio": [answers per bucket of kernel.latency.BUCKETS_MS], …}}.
    latency = models.JSONField(default=dict, blank=True)

    objects = RealtimeSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "realtime session"
        # Beyond view: ending someone's session and taking records out are separate grants
        # (issue 25); superusers have them, other staff only when given (docs/operations.md).
        permissions = [
            ("terminate_realtimesession", "Can end live realtime sessions"),
            ("export_conversations", "Can export conversations and usage (JSON, CSV)"),
        ]
        indexes = [
            models.Index(fields=["status", "last_seen_at"]),
            models.Index(fields=["user", "started_at"]),  # a user's usage today (budgets.py)
        ]

    def __str__(self) -> str:
        return f"{str(self.id)[:8]} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def duration(self) -> timedelta:
        return (self.ended_at or timezone.now()) - self.started_at

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ConnectTicket(models.Model):
    """A short-lived, single-use permission to open one WebSocket session as a user.

    The client gets a signed token; the row makes it single-use across workers (consumed by
    one conditional UPDATE).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"ticket {str(self.id)[:8]} for user {self.user_id}"


class Note(models.Model):
    """A short note a signed-in user keeps through the voice assistant (the example tools)."""

    MAX_LENGTH = 1000

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="realtime_notes"
    )
    text = models.CharField(max_length=MAX_LENGTH)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return self.text if len(self.text) <= 40 else self.text[:39] + "…"


class ConversationEntry(models.Model):
    """One thing said or done in a session (records/conversation.py): text only, no audio."""

    class Role(models.TextChoices):
        USER = "user", "user"
        ASSISTANT = "assistant", "assistant"
        SYSTEM = "system", "system"
        TOOL = "tool", "tool"
        SESSION = "session", "session"

    session = models.ForeignKey(RealtimeSession, on_delete=models.CASCADE, related_name="entries")
    seq = models.PositiveIntegerField()
    at = models.DateTimeField(db_index=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    kind = models.CharField(max_length=32)
    text = models.TextField(blank=True)
    item_id = models.CharField(max_length=128, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["session", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["session", "seq"], name="conversation_entry_order")
        ]

    def __str__(self) -> str:
        return f"{self.role} {self.kind} #{self.seq}"


class UserBudget(models.Model):
    """A staff override of one user's budgets (realtime/guards/budgets.py). Empty = the deployment's
    setting (RELAY_MAX_CONNECTS_PER_MINUTE, RELAY_USER_DAILY_SECONDS, RELAY_USER_DAILY_TOKENS);
    0 = no limit for this user."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="realtime_budget"
    )
    connects_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the deployment's setting. 0: no limit."
    )
    daily_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Session-seconds per UTC day. Empty: default. 0: none."
    )
    daily_tokens = models.BigIntegerField(
        null=True, blank=True, help_text="Tokens (in + out) per UTC day. Empty: default. 0: none."
    )
    note = models.CharField(max_length=200, blank=True)
    changed_by = models.CharField(max_length=150, blank=True, editable=False)
    changed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "user budget"

    def __str__(self) -> str:
        return f"budget of user {self.user_id}"
