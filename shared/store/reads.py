"""Reading events back: rows to RecordedEvent, in pages.

Bounds: `after_position` is exclusive, `from_version` inclusive (as in shared.store.port).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from shared.events.envelope import RecordedEvent

# Every read (relay, projections rebuild, tail, verify) goes straight to the driver SQLAlchemy holds:
# SQLAlchemy's per-column result processing cost more than the database here (decision 0004).
# Columns are selected in RecordedEvent's field order, so rows construct it positionally.
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
