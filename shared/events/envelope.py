"""The envelope around an event: what is appended (NewEvent) and what is read back (RecordedEvent).

Plain slotted records (shared.records), not pydantic: a read-all creates one per row, and that path
must stay allocation-light.
"""

from __future__ import annotations

import uuid
from dataclasses import field
from datetime import UTC, datetime
from typing import Any

from shared.events.base import Event
from shared.records import record


def utcnow() -> datetime:
    return datetime.now(UTC)


@record
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


@record
class RecordedEvent:
    """An event as stored. `payload` is the stored JSON form; `event` decodes it (upcasting old
    versions), once: a worker's screening decodes what its handler then uses."""

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
    _decoded: Event | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def event(self) -> Event:
        decoded = self._decoded
        if decoded is None:
            from shared.events.registry import registry

            decoded = registry.decode(self.type, self.schema_version, self.payload)
            object.__setattr__(self, "_decoded", decoded)  # the memo, not a field change
        return decoded
