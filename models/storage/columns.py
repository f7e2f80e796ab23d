"""Column types shared by the tables, and the one clock every part of the system reads."""

from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import CursorResult, DateTime, Result
from sqlalchemy.types import TypeDecorator

from appealflow.settings import get_settings


def utcnow() -> datetime:
    """Now, moved by the offset in seconds written to $APPEALFLOW_CLOCK_FILE when that is set: time
    travel for tests and demos, shared by every process that has the variable (API, workers,
    scheduler), so a week of deadlines passes in seconds without sleeping."""
    return datetime.now(UTC) + timedelta(seconds=_clock_offset())


def _clock_offset() -> float:
    path = get_settings().clock_file
    if path is None:
        return 0.0
    try:
        with open(path) as f:
            return float(f.read().strip() or 0)
    except FileNotFoundError:
        return 0.0


def rows_changed(result: Result) -> int:
    """How many rows an UPDATE or DELETE changed (its result is a cursor result)."""
    return cast(CursorResult, result).rowcount


def stored_id(row) -> int:
    """The primary key of a row that is in the database (loaded, or flushed in this transaction)."""
    if row.id is None:
        raise ValueError(f"this {type(row).__name__} is not stored yet")
    return row.id


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in Python, whatever the database keeps (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        return None if value is None else value.replace(tzinfo=UTC)
