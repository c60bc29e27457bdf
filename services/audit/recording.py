"""Audit of the auditors: every audit query, replay, export and verification is appended to the
`audit` stream as AuditQueried (who, what, with which filters, how many records)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from shared.events.audit import AuditQueried
from shared.events.envelope import NewEvent
from shared.logging import get_logger
from shared.store.port import EventStore

log = get_logger(__name__)

AUDIT_STREAM = "audit"
Action = Literal["query", "replay", "export", "verify"]


async def record_query(
    store: EventStore, auditor_id: str, action: Action, filters: Mapping[str, str | int | None], count: int
) -> None:
    event = AuditQueried(auditor_id=auditor_id, action=action, filters=dict(filters), record_count=count)
    result = await store.append(AUDIT_STREAM, [NewEvent(event, actor=auditor_id)])
    log.info(
        "audit_queried",
        auditor=auditor_id,
        action=action,
        filters=event.filters,
        records=count,
        position=result.last_position,
    )
