"""The hash chain: SHA-256 over a canonical form of every event, linked in position order.

    hash(n) = sha256( prev_hash(n) "\n" envelope(n) "\n" metadata(n) "\n" payload(n) )

- envelope: orjson of {actor, causation_id, correlation_id, event_id, occurred_at, position,
  recorded_at, schema_version, stream_id, stream_version, type} with sorted keys; times as ISO-8601
  UTC with microseconds, ids as canonical UUID text (null when absent);
- metadata, payload: orjson with sorted keys (the very bytes written to the database at append).
- prev_hash of the first event is GENESIS_HASH.

Verification re-serializes what it reads back. The stored text is the hashed bytes on SQLite and, since
migration 0010 (`json`), on PostgreSQL; rows written before it went through jsonb, which re-sorts keys
but keeps strings and integers exact. The one thing jsonb would not keep: a float of 1e16 or more
with no fraction, given back as an integer; the event catalogue has no float fields for that reason.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

GENESIS_HASH = "0" * 64
_SORTED = orjson.OPT_SORT_KEYS


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=_SORTED)


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _uuid_text(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def envelope_bytes(  # times come formatted by format_time: the writer formats each once
    *,
    position: int,
    stream_id: str,
    stream_version: int,
    event_id: uuid.UUID,
    type_: str,
    schema_version: int,
    occurred_at: str,
    recorded_at: str,
    actor: str,
    correlation_id: uuid.UUID | None,
    causation_id: uuid.UUID | None,
) -> bytes:
    return orjson.dumps(
        {
            "actor": actor,
            "causation_id": _uuid_text(causation_id),
            "correlation_id": _uuid_text(correlation_id),
            "event_id": str(event_id),
            "occurred_at": occurred_at,
            "position": position,
            "recorded_at": recorded_at,
            "schema_version": schema_version,
            "stream_id": stream_id,
            "stream_version": stream_version,
            "type": type_,
        },
        option=_SORTED,
    )


def chain_hash(prev_hash: str, envelope: bytes, metadata: bytes, payload: bytes) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(envelope)
    digest.update(b"\n")
    digest.update(metadata)
    digest.update(b"\n")
    digest.update(payload)
    return digest.hexdigest()
