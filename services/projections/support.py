"""The support projection: rm_tickets (one row per ticket) and rm_ticket_events (its history).

A batch is grouped by ticket; the touched rows are loaded, each ticket's events are folded in
stream order (support_state.py) and the rows are written back with one upsert. An event at or
below the row's `version` is skipped, so a replayed slice changes nothing even without the
projector's checkpoints; history rows are keyed by (ticket, stream version) and inserted once.
An event for a ticket whose TicketOpened was never seen is logged and skipped, never fatal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projections import support_state
from services.projections.sql import insert, insert_ignore
from services.projections.support_state import TicketRecord
from services.projections.tables import ChatTables
from shared.events import tickets as ev
from shared.events.envelope import RecordedEvent
from shared.logging import get_logger

log = get_logger(__name__)

TYPES = frozenset(
    t.model_fields["type"].default
    for t in (
        ev.TicketOpened,
        ev.TicketAssigned,
        ev.TicketUnassigned,
        ev.TicketEscalated,
        ev.TicketSlaClockStarted,
        ev.TicketSlaClockPaused,
        ev.TicketSlaClockResumed,
        ev.TicketSlaClockFulfilled,
        ev.TicketSlaBreached,
        ev.TicketStatusChanged,
        ev.TicketPriorityChanged,
        ev.TicketNoteAdded,
        ev.TicketTagged,
        ev.TicketRated,
        ev.TicketMessageLinked,
    )
)


async def apply(conn: AsyncConnection, t: ChatTables, events: Iterable[RecordedEvent]) -> None:
    mine = [e for e in events if e.type in TYPES]
    if not mine:
        return
    history = [_history_row(e) for e in mine]
    await conn.execute(insert_ignore(conn, t.support.events), history)
    records = await _load(conn, t, {str(e.payload["ticket_id"]) for e in mine})
    changed: dict[str, TicketRecord] = {}
    for recorded in mine:
        record = _fold_one(records, recorded)
        if record is not None:
            changed[record.ticket_id] = record
    if changed:
        stmt = insert(conn, t.support.tickets)
        columns = [c.name for c in t.support.tickets.columns if c.name != "ticket_id"]
        upsert = stmt.on_conflict_do_update(index_elements=["ticket_id"], set_={c: stmt.excluded[c] for c in columns})
        await conn.execute(upsert, [r.to_row() for r in changed.values()])


def _history_row(e: RecordedEvent) -> dict[str, Any]:
    return {
        "ticket_id": str(e.payload["ticket_id"]),
        "version": e.stream_version,
        "position": e.position,
        "type": e.type,
        "occurred_at": e.occurred_at,
        "actor": e.actor,
        "payload": e.payload,
    }


async def _load(conn: AsyncConnection, t: ChatTables, ids: set[str]) -> dict[str, TicketRecord]:
    rows = await conn.execute(select(t.support.tickets).where(t.support.tickets.c.ticket_id.in_(sorted(ids))))
    return {r.ticket_id: TicketRecord.from_row(r) for r in rows}


def _fold_one(records: dict[str, TicketRecord], recorded: RecordedEvent) -> TicketRecord | None:
    e = recorded.event
    ticket_id = str(recorded.payload["ticket_id"])
    record = records.get(ticket_id)
    if isinstance(e, ev.TicketOpened):
        if record is not None:
            return None  # already folded (a replayed slice)
        record = records[ticket_id] = TicketRecord.opened(e, recorded.occurred_at)
        record.version = recorded.stream_version
        return record
    if record is None:
        log.warning("ticket_event_without_ticket", ticket_id=ticket_id, type=recorded.type, position=recorded.position)
        return None
    if recorded.stream_version <= record.version:
        return None
    support_state.apply(record, e, recorded.occurred_at, recorded.stream_version)
    return record
