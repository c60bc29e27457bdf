"""Walking the hash chain: recompute every event's hash from what is stored and check the links.

What it catches, and where it points:
- a row altered behind the store's back: its recomputed hash differs from the stored one (that position);
- a row removed: the positions jump (the missing position is named);
- a row inserted with made-up hashes: its prev_hash or hash does not fit (its position);
- hashes recomputed after an edit: nothing inside the table can show it; a signed checkpoint kept
  outside the database does (the audit issue's `audit checkpoint`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.store.hashing import GENESIS_HASH, canonical_json, chain_hash, envelope_bytes, format_time
from shared.store.sql import SqlEventStore
from shared.store.tables import events

Progress = Callable[[int, int], None]
"""Called with (events checked so far, events in the store when the walk started)."""


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    head_position: int
    head_hash: str
    bad_position: int | None = None
    problem: str | None = None


async def verify_chain(engine: AsyncEngine, *, page_size: int = 5000, progress: Progress | None = None) -> VerifyResult:
    """Walk the whole chain in position order, in pages; stop at the first bad position."""
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(events))).scalar_one()
    expected_position, prev_hash, checked = 1, GENESIS_HASH, 0
    store = SqlEventStore(engine)  # its fast read path; the engine stays the caller's
    while True:
        rows = await store.read_all(expected_position - 1, page_size)
        for row in rows:
            problem = _check(row, expected_position, prev_hash)
            if problem is not None:
                bad = expected_position if row.position > expected_position else row.position
                return VerifyResult(False, checked, expected_position - 1, prev_hash, bad, problem)
            prev_hash = row.hash
            expected_position += 1
            checked += 1
        if progress is not None:
            progress(checked, total)
        if len(rows) < page_size:
            return VerifyResult(True, checked, expected_position - 1, prev_hash)


def _check(row: Any, expected_position: int, prev_hash: str) -> str | None:
    if row.position != expected_position:
        return f"position {expected_position} is missing (the next stored position is {row.position})"
    if row.prev_hash != prev_hash:
        return "prev_hash does not link to the previous event (a row was inserted or replaced)"
    recomputed = recompute_hash(row, prev_hash)
    if recomputed != row.hash:
        return "stored hash does not match the event's content (the row was altered)"
    return None


def recompute_hash(row: Any, prev_hash: str) -> str:
    envelope = envelope_bytes(
        position=row.position,
        stream_id=row.stream_id,
        stream_version=row.stream_version,
        event_id=row.event_id,
        type_=row.type,
        schema_version=row.schema_version,
        occurred_at=format_time(row.occurred_at),
        recorded_at=format_time(row.recorded_at),
        actor=row.actor,
        correlation_id=row.correlation_id,
        causation_id=row.causation_id,
    )
    return chain_hash(prev_hash, envelope, canonical_json(row.metadata), canonical_json(row.payload))
