"""The event store port: what services may ask of the store. Implemented by shared.store.sql.SqlEventStore
for PostgreSQL and SQLite.

Bounds, stated once: `read_all(after_position=p)` returns positions > p (exclusive);
`read_stream(stream_id, from_version=v)` returns versions >= v (inclusive).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from shared.errors import LedgerlineError
from shared.events.envelope import NewEvent, RecordedEvent


class AnyVersion(enum.Enum):
    ANY = "any"


ANY = AnyVersion.ANY
"""expected_version that accepts whatever version the stream is at."""
NO_STREAM = 0
"""expected_version of a stream that must not exist yet."""

ExpectedVersion = int | AnyVersion


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where the appended events landed. A repeated append of the same event ids answers the same."""

    stream_id: str
    first_version: int
    last_version: int
    first_position: int
    last_position: int
    event_ids: tuple[uuid.UUID, ...]


@dataclass(frozen=True, slots=True)
class Head:
    """The last event of the whole store (position 0 and the genesis hash when empty)."""

    position: int
    hash: str


class StoreError(LedgerlineError):
    pass


class WrongExpectedVersion(StoreError):
    """The stream moved since the caller loaded it: reload and retry."""

    def __init__(self, stream_id: str, expected: ExpectedVersion, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"stream {stream_id!r} is at version {actual}, expected {expected}")


class EventIdConflict(StoreError):
    """Some of the event ids are stored already, but not as this same append: a caller bug."""

    def __init__(self, stream_id: str, event_ids: Sequence[uuid.UUID]) -> None:
        self.stream_id = stream_id
        self.event_ids = tuple(event_ids)
        super().__init__(f"event ids already stored elsewhere or partially: {[str(e) for e in event_ids]}")


class StoreUnavailable(StoreError):
    """The database could not be reached or failed; nothing of the append was stored."""


class EventStore(Protocol):
    async def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> AppendResult: ...

    async def read_stream(
        self, stream_id: str, from_version: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]: ...

    async def read_all(self, after_position: int = 0, limit: int = 1000) -> list[RecordedEvent]: ...

    async def head(self) -> Head: ...

    async def wait_for_events(self, after_position: int, timeout: float) -> int:
        """Return the head position as soon as it is beyond `after_position`, or when `timeout` passes."""
        ...

    async def close(self) -> None: ...
