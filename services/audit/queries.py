"""Reading the audit read model: filtered events in keyset pages, and a conversation's events for
replay. Straight on the driver (decision 0004): an export of a million events must not pay for
SQLAlchemy's per-row processing, nor hold more than one page in memory.

Bounds: `after_position` is exclusive; `from` is inclusive and `to` exclusive, both on
`recorded_at` (the store's time, covered by the hash chain).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.store.hashing import format_time

PAGE = 5000
COLUMNS = (
    "position",
    "recorded_at",
    "occurred_at",
    "actor",
    "stream_id",
    "type",
    "conversation_id",
    "summary",
    "hash",
    "payload",
)
"""The fields of one exported record, in this order (the CSV header)."""


@dataclass(frozen=True, slots=True)
class EventFilter:
    conversation_id: str | None = None
    user_id: str | None = None
    type: str | None = None
    from_: datetime | None = None
    to: datetime | None = None

    def as_filters(self) -> dict[str, str | None]:
        """As AuditQueried records them (the API's parameter names)."""
        values = {
            "conversation_id": self.conversation_id,
            "user_id": self.user_id,
            "type": self.type,
            "from": None if self.from_ is None else format_time(self.from_),
            "to": None if self.to is None else format_time(self.to),
        }
        return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One row as the driver gives it: times as ISO text, the payload as JSON text (see audit_tables.py)."""

    values: tuple[Any, ...]

    def to_json(self) -> dict[str, Any]:
        record = dict(zip(COLUMNS, self.values, strict=True))
        record["payload"] = orjson.loads(record["payload"])
        return record


SELECT = (
    "SELECT e.position, e.recorded_at, e.occurred_at, e.actor, e.stream_id, e.type, e.conversation_id, e.summary, "
    "e.hash, e.payload FROM rm_audit_events e "
)


def _query(f: EventFilter, pg: bool) -> tuple[str, list[Any]]:
    """The page query (its first parameter is after_position, its last the limit)."""
    mark = "%s" if pg else "?"
    joins, clauses, params = "", [f"e.position > {mark}"], list[Any]()
    if f.user_id is not None:
        joins = f"JOIN rm_audit_event_users u ON u.position = e.position AND u.user_id = {mark} "
        params.append(f.user_id)
    for column, value, op in (
        ("e.conversation_id", f.conversation_id, "="),
        ("e.type", f.type, "="),
        ("e.recorded_at", f.from_, ">="),
        ("e.recorded_at", f.to, "<"),
    ):
        if value is not None:
            clauses.append(f"{column} {op} {mark}")
            params.append(format_time(value) if isinstance(value, datetime) else value)
    sql = SELECT + joins + "WHERE " + " AND ".join(clauses) + f" ORDER BY e.position LIMIT {mark}"
    return sql, params


async def pages(
    conn: AsyncConnection, f: EventFilter, after_position: int = 0, limit: int | None = None, page: int = PAGE
) -> AsyncIterator[list[RawRecord]]:
    """Matching records in position order, `page` at a time, at most `limit` in all. The next page is
    asked for before this one is handed out, so the database works while the caller encodes."""
    pg = conn.dialect.name == "postgresql"
    sql, params = _query(f, pg)
    driver: Any = (await conn.get_raw_connection()).driver_connection

    async def fetch(after: int, size: int) -> list[Any]:
        bound = [after, *params, size] if f.user_id is None else [params[0], after, *params[1:], size]
        return list(await (await driver.execute(sql, bound)).fetchall())

    left = limit
    size = page if left is None else min(page, left)
    pending: asyncio.Task[list[Any]] | None = asyncio.create_task(fetch(after_position, size))
    try:
        while pending is not None:
            rows = await pending
            pending = None
            if left is not None:
                left -= len(rows)
            if len(rows) == size and (left is None or left > 0):
                size = page if left is None else min(page, left)
                pending = asyncio.create_task(fetch(rows[-1][0], size))
                await asyncio.sleep(0)  # let it send the query
            if rows:
                yield [RawRecord(tuple(r)) for r in rows]
    finally:
        if pending is not None:  # the consumer stopped early: finish the query before the connection goes back
            await asyncio.gather(pending, return_exceptions=True)


@dataclass(frozen=True, slots=True)
class ReplayRow:
    position: int
    type: str
    recorded_at: datetime
    payload: dict[str, Any]


async def conversation_rows(conn: AsyncConnection, conversation_id: str, as_of: datetime | None) -> list[ReplayRow]:
    """The conversation's events as the audit read model has them (for services.audit.replay)."""
    pg = conn.dialect.name == "postgresql"
    mark = "%s" if pg else "?"
    sql = f"SELECT position, type, recorded_at, payload FROM rm_audit_events WHERE conversation_id = {mark}"
    params: list[Any] = [conversation_id]
    if as_of is not None:
        sql += f" AND recorded_at <= {mark}"  # ISO text of one fixed width: text order is time order
        params.append(format_time(as_of))
    driver: Any = (await conn.get_raw_connection()).driver_connection
    cursor = await driver.execute(sql + " ORDER BY position", params)
    rows = await cursor.fetchall()
    iso, loads = datetime.fromisoformat, orjson.loads
    return [ReplayRow(r[0], r[1], iso(r[2]), loads(r[3])) for r in rows]


async def membership(conn: AsyncConnection, conversation_id: str, as_of: datetime | None) -> list[dict[str, Any]]:
    """Stays in the conversation as the read model has them at `as_of`: who could see it, when."""
    pg = conn.dialect.name == "postgresql"
    mark = "%s" if pg else "?"
    sql = (
        "SELECT user_id, joined_at, left_at FROM rm_audit_membership "
        f"WHERE conversation_id = {mark} ORDER BY joined_position, user_id"
    )
    driver: Any = (await conn.get_raw_connection()).driver_connection
    rows = await (await driver.execute(sql, [conversation_id])).fetchall()
    out = []
    for user, joined, left in rows:
        joined_at = joined if pg else datetime.fromisoformat(joined)
        left_at = None if left is None else (left if pg else datetime.fromisoformat(left))
        if as_of is not None and joined_at > as_of:
            continue
        if as_of is not None and left_at is not None and left_at > as_of:
            left_at = None
        out.append({"user_id": user, "joined_at": format_time(joined_at), "left_at": left_at and format_time(left_at)})
    return out
