"""Table definitions shared by the store, the worker runtime and the read models.

Every table of the project is defined against `metadata` here or in a module that imports it, and
created by the Alembic migrations in shared/store/migrations/versions/.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """timestamptz on PostgreSQL; ISO-8601 text on SQLite, parsed with the C-fast fromisoformat
    (SQLAlchemy's own SQLite DateTime parses with a regex, too slow for read-all)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware ones")
        if dialect.name == "sqlite":
            return value.astimezone(UTC).isoformat(timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# Read models: JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
Json = JSON().with_variant(JSONB(), "postgresql")
# The events' payload and metadata: `json` on PostgreSQL, the canonical text the store hashed, kept as
# written; nothing queries inside it, and jsonb's parse on insert and re-encode on read cost a
# seventh of both (migration 0010, decision 0022).
EventJson = JSON()

events = Table(
    "events",
    metadata,
    # Assigned by the store under its append lock: gapless and in commit order (see shared/store/append.py).
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("stream_id", String(200), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("type", String(100), nullable=False),
    Column("schema_version", SmallInteger, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("correlation_id", Uuid, nullable=True),
    Column("causation_id", Uuid, nullable=True),
    Column("payload", EventJson, nullable=False),
    Column("metadata", EventJson, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("event_id", name="uq_events_event_id"),
    UniqueConstraint("stream_id", "stream_version", name="uq_events_stream_version"),
    # No index on type: no query filters events by type (the workers' filters are the broker's), and
    # each index is a share of every append's cost (migration 0010 dropped ix_events_type_position).
)

# Named cursors (relay, and anything else that follows the store by position). `position` is the
# last position processed, inclusive: resume reads with after_position=position.
checkpoints = Table(
    "checkpoints",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("note", Text, nullable=True),
)
