"""The counter columns written out in realtime/models.py agree with the table of counters
(realtime/kernel/counters.py): every stored counter has its column, of the right type, and
there is no column no counter fills."""

from __future__ import annotations

import pytest
from django.db import models

from realtime.kernel.counters import COUNTERS, STORED, SessionCounters
from realtime.models import RealtimeSession, SessionCounterColumns


def counter_columns() -> dict[str, models.Field]:
    return {field.name: field for field in SessionCounterColumns._meta.get_fields()}


def test_every_stored_counter_has_its_column_of_its_type() -> None:
    columns = counter_columns()
    for counter in STORED:
        assert counter.column in columns, f"{counter.name}: no column {counter.column!r}"
        field = columns[counter.column]
        expected = models.BigIntegerField if counter.big else models.PositiveIntegerField
        assert type(field) is expected, f"{counter.column} is a {type(field).__name__}"
        assert field.default == 0 and not field.null, f"{counter.column} must default to 0"


def test_every_counter_column_is_filled_by_a_counter_in_the_tables_order() -> None:
    assert list(counter_columns()) == [c.column for c in STORED]
    in_memory_only = {c.name for c in COUNTERS if c.column is None}
    assert not in_memory_only & {f.name for f in RealtimeSession._meta.get_fields()}


def test_the_heartbeat_writes_exactly_these_columns() -> None:
    counters = SessionCounters(audio_bytes_in=4800, tool_ms=7)
    written = counters.columns()
    assert set(written) == set(counter_columns())
    assert written["audio_ms_in"] == 100 and written["tool_ms"] == 7
    RealtimeSession(**written)  # every name is a field the model takes


@pytest.mark.django_db
def test_the_models_need_no_migration() -> None:
    """The fields written out in models.py are what the migrations made (no changes)."""
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    try:
        call_command("makemigrations", "realtime", "--check", "--dry-run", stdout=out)
    except SystemExit:
        raise AssertionError(f"models.py and the migrations differ:\n{out.getvalue()}") from None
