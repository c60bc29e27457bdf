"""Walking the hash chain: recompute every event's hash from what is stored and check the links.

What it catches, and where it points:
- a row altered behind the store's back: its recomputed hash differs from the stored one (that position);
- a row removed: the positions jump (the missing position is named);
- a row inserted with made-up hashes: its prev_hash or hash does not fit (its position);
- hashes recomputed after an edit: nothing inside the table can show it; a signed checkpoint kept
  outside the database does (`anchor`: the hash found at a checkpoint's position, compared by
  services/audit/checkpoint.py).

The walk is a hot path (issue #7: >= 50,000 events/s on PostgreSQL): it reads the raw driver rows
with the envelope's text forms produced by the database (UUIDs as text, times formatted by to_char
exactly as hashing.format_time does, JSON as text), so Python only re-sorts the JSON and hashes;
and it asks for the next page before hashing the current one, so the database works meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.store.hashing import GENESIS_HASH, canonical_json, chain_hash, envelope_bytes, format_time

Progress = Callable[[int, int], None]
"""Called with (events checked so far, the head position when the walk started)."""

_ISO = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
PG_PAGE = (
    "SELECT position, stream_id, stream_version, event_id::text, type, schema_version, "
    f"{_ISO.format('occurred_at')}, {_ISO.format('recorded_at')}, actor, correlation_id::text, "
    "causation_id::text, payload::text, metadata::text, prev_hash, hash "
    "FROM events WHERE position > %s ORDER BY position LIMIT %s"
)
SQLITE_PAGE = (
    "SELECT position, stream_id, stream_version, event_id, type, schema_version, occurred_at, recorded_at, "
    "actor, correlation_id, causation_id, payload, metadata, prev_hash, hash "
    "FROM events WHERE position > ? ORDER BY position LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    head_position: int
    head_hash: str
    bad_position: int | None = None
    problem: str | None = None
    anchor_hash: str | None = None
    """The stored hash at the `anchor` position asked for, when the walk reached it."""


def _dashed(hex32: str | None) -> str | None:
    """SQLite keeps UUIDs as 32 hex digits; the canonical form has dashes."""
    if hex32 is None:
        return None
    h = hex32
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _hash_of(r: Sequence[Any], prev_hash: str, sqlite: bool) -> str:
    """hashing.chain_hash of a raw row (same bytes as hashing.envelope_bytes: keys written sorted)."""
    ev, co, ca = (_dashed(r[3]), _dashed(r[9]), _dashed(r[10])) if sqlite else (r[3], r[9], r[10])
    envelope = orjson.dumps(
        {
            "actor": r[8],
            "causation_id": ca,
            "correlation_id": co,
            "event_id": ev,
            "occurred_at": r[6],
            "position": r[0],
            "recorded_at": r[7],
            "schema_version": r[5],
            "stream_id": r[1],
            "stream_version": r[2],
            "type": r[4],
        }
    )
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(envelope)
    digest.update(b"\n")
    digest.update(orjson.dumps(orjson.loads(r[12]), option=orjson.OPT_SORT_KEYS))
    digest.update(b"\n")
    digest.update(orjson.dumps(orjson.loads(r[11]), option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()


def _problem(r: Sequence[Any], expected_position: int, prev_hash: str, sqlite: bool) -> str | None:
    if r[0] != expected_position:
        return f"position {expected_position} is missing (the next stored position is {r[0]})"
    if r[13] != prev_hash:
        return "prev_hash does not link to the previous event (a row was inserted or replaced)"
    try:
        recomputed = _hash_of(r, prev_hash, sqlite)
    except (orjson.JSONDecodeError, TypeError, AttributeError):
        return "the stored payload or metadata is not JSON (the row was altered)"
    if recomputed != r[14]:
        return "stored hash does not match the event's content (the row was altered)"
    return None


async def verify_chain(
    engine: AsyncEngine, *, page_size: int = 5000, progress: Progress | None = None, anchor: int | None = None
) -> VerifyResult:
    """Walk the whole chain in position order, in pages; stop at the first bad position."""
    sqlite = engine.dialect.name == "sqlite"
    sql = SQLITE_PAGE if sqlite else PG_PAGE
    async with engine.connect() as conn:
        driver: Any = (await conn.get_raw_connection()).driver_connection
        head = (await (await driver.execute("SELECT coalesce(max(position), 0) FROM events")).fetchone())[0]

        async def fetch(after: int) -> list[Any]:
            return list(await (await driver.execute(sql, (after, page_size))).fetchall())

        expected, prev_hash, anchor_hash = 1, GENESIS_HASH, None
        pending = asyncio.create_task(fetch(0))
        while True:
            rows = await pending
            if len(rows) == page_size:  # the query goes out now; the database works while we hash
                pending = asyncio.create_task(fetch(rows[-1][0]))
                await asyncio.sleep(0)
            for r in rows:
                problem = _problem(r, expected, prev_hash, sqlite)
                if problem is not None:
                    if len(rows) == page_size:
                        await pending
                    bad = expected if r[0] > expected else r[0]
                    return VerifyResult(False, expected - 1, expected - 1, prev_hash, bad, problem, anchor_hash)
                prev_hash = r[14]
                if expected == anchor:
                    anchor_hash = prev_hash
                expected += 1
            if progress is not None:
                progress(expected - 1, max(head, expected - 1))
            if len(rows) < page_size:
                return VerifyResult(True, expected - 1, expected - 1, prev_hash, anchor_hash=anchor_hash)


def recompute_hash(row: Any, prev_hash: str) -> str:
    """The hash of a RecordedEvent-like row (attribute access), for callers holding decoded events."""
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
