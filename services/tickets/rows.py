"""tk_tickets and tk_timers: the worker's copy of each ticket's routing facts and running clocks.

Both are written from a folded ticket state (the stream is the truth) and only forward: a state of an
older stream version than the row's changes nothing, so two deliveries racing cannot roll a row back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tickets.domain.state import ACTIVE, TicketState
from services.tickets.tables import tickets, timers


@dataclass(frozen=True, slots=True)
class TicketRow:
    ticket_id: str
    requester_id: str
    segment: str
    line: int
    status: str
    assignee: str | None
    conversation_id: str | None


async def save(conn: AsyncConnection, state: TicketState, warning_lead: int) -> TicketRow | None:
    """Write the ticket's row and timers; answer the row as it was before (None: new, or not older)."""
    found = (await conn.execute(select(tickets).where(tickets.c.ticket_id == state.ticket_id))).first()
    if found is not None and found.version >= state.version:
        return None  # written already at this version (or a newer one): nothing to change
    assert state.opened_at is not None
    values = {
        "conversation_id": state.conversation_id,
        "requester_id": state.requester_id,
        "segment": state.segment,
        "line": state.line,
        "status": state.status,
        "assignee": state.assignee,
        "opened_at": state.opened_at,
        "queue_due_at": _queue_due(state),
        "version": state.version,
    }
    if found is None:
        await conn.execute(tickets.insert().values(ticket_id=state.ticket_id, **values))
    else:
        await conn.execute(update(tickets).where(tickets.c.ticket_id == state.ticket_id).values(**values))
    await _save_timers(conn, state, warning_lead)
    if found is None:
        return None
    return TicketRow(
        found.ticket_id,
        found.requester_id,
        found.segment,
        found.line,
        found.status,
        found.assignee,
        found.conversation_id,
    )


def _queue_due(state: TicketState) -> datetime | None:
    """The queue's order: the earliest due time of a running clock (None sorts last)."""
    dues = [c.due_at for c in state.clocks.values() if c.status == "running"]
    return min(dues) if dues else None


async def _save_timers(conn: AsyncConnection, state: TicketState, warning_lead: int) -> None:
    wanted: dict[tuple[str, str], datetime] = {}
    if state.status in ACTIVE:
        for clock, c in state.clocks.items():
            if c.status != "running":
                continue
            wanted[(clock, "breach")] = c.due_at
            if warning_lead > 0:
                wanted[(clock, "warning")] = c.due_at - timedelta(seconds=warning_lead)
    rows = (await conn.execute(select(timers).where(timers.c.ticket_id == state.ticket_id))).all()
    have = {(r.clock, r.kind): r.due_at for r in rows}
    for key, due in have.items():
        if wanted.get(key) != due:
            await conn.execute(
                delete(timers).where(
                    timers.c.ticket_id == state.ticket_id, timers.c.clock == key[0], timers.c.kind == key[1]
                )
            )
    for (clock, kind), due in wanted.items():
        if have.get((clock, kind)) != due:
            await conn.execute(
                timers.insert().values(ticket_id=state.ticket_id, clock=clock, kind=kind, due_at=due, fired=False)
            )


async def latest_of_conversation(conn: AsyncConnection, conversation_id: str) -> TicketRow | None:
    query = (
        select(tickets)
        .where(tickets.c.conversation_id == conversation_id)
        .order_by(tickets.c.opened_at.desc(), tickets.c.ticket_id.desc())
        .limit(1)
    )
    r = (await conn.execute(query)).first()
    return None if r is None else _ticket_row(r)


def _latest_of_conversations_query() -> Select[Any]:
    newest_first = (tickets.c.opened_at.desc(), tickets.c.ticket_id.desc())
    rank = func.row_number().over(partition_by=tickets.c.conversation_id, order_by=newest_first).label("rank")
    ids: BindParameter[list[str]] = bindparam("ids", expanding=True)
    ranked = select(tickets, rank).where(tickets.c.conversation_id.in_(ids)).subquery()
    return select(ranked).where(ranked.c.rank == 1)


# Built once: the tickets worker runs it for every batch of messages, and building the subquery's
# column proxies cost more of its CPU than the query (py-spy, 2026-12-03).
LATEST_OF_CONVERSATIONS = _latest_of_conversations_query()


async def latest_of_conversations(
    conn: AsyncConnection, conversation_ids: Iterable[str]
) -> dict[str, TicketRow | None]:
    """latest_of_conversation for each of `conversation_ids`, in one query (None: no ticket)."""
    ids = sorted(set(conversation_ids))
    found: dict[str, TicketRow | None] = dict.fromkeys(ids)
    if not ids:
        return found
    for r in (await conn.execute(LATEST_OF_CONVERSATIONS, {"ids": ids})).all():
        found[r.conversation_id] = _ticket_row(r)
    return found


def _ticket_row(r: Any) -> TicketRow:
    return TicketRow(r.ticket_id, r.requester_id, r.segment, r.line, r.status, r.assignee, r.conversation_id)


async def queued(conn: AsyncConnection, line: int, segment: str | None, limit: int) -> list[str]:
    """Unassigned open tickets of a queue, most urgent first (earliest SLA due, then oldest)."""
    query = select(tickets.c.ticket_id).where(
        tickets.c.line == line, tickets.c.assignee.is_(None), tickets.c.status.in_(sorted(ACTIVE))
    )
    if segment is not None:
        query = query.where(tickets.c.segment == segment)
    query = query.order_by(
        tickets.c.queue_due_at.is_(None), tickets.c.queue_due_at, tickets.c.opened_at, tickets.c.ticket_id
    )
    return [r.ticket_id for r in (await conn.execute(query.limit(limit))).all()]


async def set_assignee(conn: AsyncConnection, ticket_id: str, agent_id: str, version: int) -> None:
    await conn.execute(
        update(tickets)
        .where(tickets.c.ticket_id == ticket_id, tickets.c.version <= version)
        .values(assignee=agent_id, version=version)
    )
