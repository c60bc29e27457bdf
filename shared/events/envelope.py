"""The envelope around an event: what is appended (NewEvent) and what is read back (RecordedEvent).

Plain slotted dataclasses, not pydantic: a read-all creates one per row, and that path must stay
allocation-light.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.events.base import Event


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. `event_id` is the idempotency key: derive it deterministically when a retry
    must not produce a second event (see shared.events.ids)."""

    event: Event
    actor: str
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    occurred_at: datetime = field(default_factory=utcnow)
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return self.event.type

    @property
    def schema_version(self) -> int:
        return self.event.schema_version


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored. `payload` is the stored JSON form; `event` decodes it (upcasting old versions)."""

    position: int
    stream_id: str
    stream_version: int
    event_id: uuid.UUID
    type: str
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime
    actor: str
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def event(self) -> Event:
        from shared.events.registry import registry

        return registry.decode(self.type, self.schema_version, self.payload)
