"""Reading events back: rows to RecordedEvent, in pages.

Bounds: `after_position` is exclusive, `from_version` inclusive (as in shared.store.port).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, select

from shared.events.envelope import RecordedEvent
from shared.store.tables import events

COLUMNS = (
    events.c.position,
    events.c.stream_id,
    events.c.stream_version,
    events.c.event_id,
    events.c.type,
    events.c.schema_version,
    events.c.occurred_at,
    events.c.recorded_at,
    events.c.actor,
    events.c.correlation_id,
    events.c.causation_id,
    events.c.payload,
    events.c.metadata,
    events.c.prev_hash,
    events.c.hash,
)


def all_after(after_position: int, limit: int) -> Select[Any]:
    return select(*COLUMNS).where(events.c.position > after_position).order_by(events.c.position).limit(limit)


def stream_from(stream_id: str, from_version: int, limit: int | None) -> Select[Any]:
    query = (
        select(*COLUMNS)
        .where(events.c.stream_id == stream_id, events.c.stream_version >= from_version)
        .order_by(events.c.stream_version)
    )
    return query if limit is None else query.limit(limit)


def to_recorded(rows: Sequence[Any]) -> list[RecordedEvent]:
    # Positional construction: the column order above is the dataclass field order.
    return [RecordedEvent(*row) for row in rows]


# The hot reads (relay, projections rebuild, tail, verify) go straight to the driver SQLAlchemy holds:
# SQLAlchemy's per-column result processing cost more than the database here (profile in
# docs/event-store.md). The SQL is the same as `all_after` / `stream_from` above.
_SELECT = (
    "SELECT position, stream_id, stream_version, event_id, type, schema_version, occurred_at, recorded_at, "
    "actor, correlation_id, causation_id, payload, metadata, prev_hash, hash FROM events "
)
PG_ALL_AFTER = _SELECT + "WHERE position > %s ORDER BY position LIMIT %s"
PG_STREAM_FROM = _SELECT + "WHERE stream_id = %s AND stream_version >= %s ORDER BY stream_version LIMIT %s"
SQLITE_ALL_AFTER = _SELECT + "WHERE position > ? ORDER BY position LIMIT ?"
SQLITE_STREAM_FROM = _SELECT + "WHERE stream_id = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?"


def pg_rows_to_recorded(rows: Sequence[Any]) -> list[RecordedEvent]:
    """psycopg already gives UUIDs, aware datetimes and (through the engine's orjson loads) dicts."""
    return [RecordedEvent(*row) for row in rows]


def sqlite_rows_to_recorded(rows: Sequence[Any]) -> list[RecordedEvent]:
    """SQLite gives text: UUIDs as 32 hex digits, times as ISO-8601, JSON as text."""
    uuid_, iso, loads = uuid.UUID, datetime.fromisoformat, orjson.loads
    return [
        RecordedEvent(
            r[0],
            r[1],
            r[2],
            uuid_(hex=r[3]),
            r[4],
            r[5],
            iso(r[6]),
            iso(r[7]),
            r[8],
            None if r[9] is None else uuid_(hex=r[9]),
            None if r[10] is None else uuid_(hex=r[10]),
            loads(r[11]),
            loads(r[12]),
            r[13],
            r[14],
        )
        for r in rows
    ]
