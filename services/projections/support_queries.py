"""What the gateway reads from the support read models (docs/support-metrics.md).

Who may see what is the route's decision (services/gateway/routes/ticket_views.py); these queries
take the scope it computed. Metrics live in support_metrics.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, case, false, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.projections.support_state import ACTIVE
from services.projections.support_views import (
    HistoryEntry,
    PublicReply,
    Queue,
    QueueTicket,
    RequesterTicket,
    TicketDetail,
    TicketSummary,
)
from services.projections.tables import TABLES

MAX_LIMIT = 200
LINES = (1, 2, 3)
SEGMENTS = ("customers", "suppliers")
_t, _h, _m = TABLES.support.tickets, TABLES.support.events, TABLES.messages


ENGINEERS = 3  # line 3 serves every segment


@dataclass(frozen=True, slots=True)
class Scope:
    """The tickets an agent may see (as the write side decides, services/gateway/commands/tickets.py):
    those on their `lines` of their `segment` (line 3: of every segment), and those assigned to them."""

    user_id: str
    lines: tuple[int, ...]
    segment: str | None

    def queue(self, line: int, segment: str) -> bool:
        return line in self.lines and (line == ENGINEERS or segment == self.segment)

    def where(self) -> ColumnElement[bool]:
        on_lines: ColumnElement[bool] = false()
        if ENGINEERS in self.lines:
            on_lines = _t.c.line == ENGINEERS
        if self.segment is not None and (others := [n for n in self.lines if n != ENGINEERS]):
            on_lines = or_(on_lines, and_(_t.c.line.in_(others), _t.c.segment == self.segment))
        return or_(on_lines, _t.c.assignee_id == self.user_id)

    def covers(self, row: Row[Any]) -> bool:
        return self.queue(row.line, row.segment) or row.assignee_id == self.user_id


def summary(r: Row[Any]) -> TicketSummary:
    return TicketSummary(
        r.ticket_id,
        r.requester_id,
        r.conversation_id,
        r.segment,
        r.channel,
        r.subject,
        r.priority,
        r.line,
        r.status,
        r.assignee_id,
        r.opened_at,
        r.updated_at,
        r.first_response_at,
        r.resolved_at,
        r.next_due_at,
        r.next_due_clock,
        r.waiting_since,
        list(r.tags),
    )


async def tickets(
    conn: AsyncConnection,
    scope: Scope | None,
    *,
    line: int | None = None,
    segment: str | None = None,
    status: str | None = None,
    assignee: str | None = None,
    limit: int = 50,
) -> list[TicketSummary]:
    """Newest first; `scope` None: every ticket (supervisors)."""
    query = select(_t).order_by(_t.c.opened_at.desc(), _t.c.ticket_id).limit(min(limit, MAX_LIMIT))
    for column, value in ((_t.c.line, line), (_t.c.segment, segment), (_t.c.status, status)):
        if value is not None:
            query = query.where(column == value)
    if assignee is not None:
        query = query.where(_t.c.assignee_id == assignee)
    if scope is not None:
        query = query.where(scope.where())
    return [summary(r) for r in await conn.execute(query)]


async def ticket_row(conn: AsyncConnection, ticket_id: str) -> Row[Any] | None:
    return (await conn.execute(select(_t).where(_t.c.ticket_id == ticket_id))).first()


async def detail(conn: AsyncConnection, row: Row[Any]) -> TicketDetail:
    """The desk's view: the ticket and every one of its events in order, with message texts."""
    events = (await conn.execute(select(_h).where(_h.c.ticket_id == row.ticket_id).order_by(_h.c.version))).all()
    texts = await _texts(conn, [e.payload for e in events if e.type == "TicketMessageLinked"])
    history = [
        HistoryEntry(e.version, e.type, e.occurred_at, e.actor, dict(e.payload), _text_of(texts, e.payload, e.type))
        for e in events
    ]
    return TicketDetail(
        summary(row),
        row.handler_id,
        row.reopen_count,
        row.agent_replies,
        dict(row.clocks),
        row.rating,
        row.rating_comment,
        history,
    )


async def requester_view(conn: AsyncConnection, row: Row[Any]) -> RequesterTicket:
    """The requester's view: status, line, subject, the public messages and the rating. Never notes,
    assignees, tags, clocks or any other internal field."""
    query = select(_h.c.payload, _h.c.occurred_at).where(
        _h.c.ticket_id == row.ticket_id, _h.c.type == "TicketMessageLinked"
    )
    linked = [(p, at) for p, at in (await conn.execute(query.order_by(_h.c.version))).all() if p.get("public") is True]
    texts = await _texts(conn, [p for p, _ in linked])
    replies = [
        PublicReply(
            p["message_id"],
            p["seq"],
            p["author_id"],
            p["author_id"] == row.requester_id,
            texts.get((p["conversation_id"], p["seq"]), ""),
            at,
        )
        for p, at in linked
    ]
    return RequesterTicket(row.ticket_id, row.status, row.line, row.subject, row.opened_at, replies, row.rating)


async def _texts(conn: AsyncConnection, links: Sequence[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """(conversation, seq) → text, from the chat read model (empty for a retracted message)."""
    if not links:
        return {}
    wanted = {(p["conversation_id"], p["seq"]) for p in links}
    query = select(_m.c.conversation_id, _m.c.seq, _m.c.text).where(
        _m.c.conversation_id.in_(sorted({c for c, _ in wanted})), _m.c.seq.in_(sorted({s for _, s in wanted}))
    )
    return {(c, s): text for c, s, text in await conn.execute(query) if (c, s) in wanted}


def _text_of(texts: dict[tuple[str, int], str], payload: dict[str, Any], type_: str) -> str | None:
    if type_ != "TicketMessageLinked":
        return None
    return texts.get((payload["conversation_id"], payload["seq"]))


async def queues(conn: AsyncConnection, scope: Scope | None, now: datetime) -> list[Queue]:
    """Per line and segment (ascending), the open tickets in SLA order; every queue of the caller's
    lines is listed, empty ones too."""
    no_due_last = case((_t.c.next_due_at.is_(None), 1), else_=0)
    query = (
        select(_t)
        .where(_t.c.status.in_(ACTIVE))
        .order_by(_t.c.line, _t.c.segment, no_due_last, _t.c.next_due_at, _t.c.opened_at, _t.c.ticket_id)
    )
    if scope is not None:
        query = query.where(scope.where())
    out = {
        (line, segment): Queue(line, segment, [])
        for line in LINES
        for segment in SEGMENTS
        if scope is None or scope.queue(line, segment)
    }
    for r in await conn.execute(query):
        queue = out.setdefault((r.line, r.segment), Queue(r.line, r.segment, []))
        waiting = max(0.0, (now - r.waiting_since).total_seconds()) if r.waiting_since is not None else None
        overdue = r.next_due_at is not None and r.next_due_at < now
        queue.tickets.append(
            QueueTicket(
                r.ticket_id,
                r.requester_id,
                r.subject,
                r.priority,
                r.status,
                r.assignee_id,
                r.opened_at,
                r.next_due_at,
                r.next_due_clock,
                overdue,
                r.waiting_since,
                waiting,
            )
        )
    return [out[k] for k in sorted(out)]
