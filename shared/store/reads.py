"""Reading events back: rows to RecordedEvent, in pages.

Bounds: `after_position` is exclusive, `from_version` inclusive (as in shared.store.port).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
