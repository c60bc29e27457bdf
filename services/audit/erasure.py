"""Erasing one person's personal data (152-FZ) without breaking the chain: destroy their keys
(shared/store/personal.py), then record PersonalDataErased on their user stream. From then on the
store's reads show their sealed fields as erased; the projections scrub what they had copied
(services/projections/erasure.py). Nothing in the events table changes, so `audit verify` passes."""

from __future__ import annotations

from shared.events.envelope import NewEvent
from shared.events.users import ErasureReason, PersonalDataErased
from shared.logging import get_logger
from shared.store.port import AppendResult
from shared.store.sql import SqlEventStore

log = get_logger(__name__)


async def erase_person(
    store: SqlEventStore, user_id: str, *, erased_by: str, reason: ErasureReason, reference: str | None = None
) -> AppendResult:
    destroyed = await store.keys.erase(user_id)
    event = PersonalDataErased(user_id=user_id, erased_by=erased_by, reason=reason, reference=reference)
    result = await store.append(f"user-{user_id}", [NewEvent(event, actor=erased_by)])
    log.info("personal_data_erased", user=user_id, by=erased_by, reason=reason, keys=destroyed)
    return result
