"""One ticket's read-model row, folded from its stream's events (pure, no I/O).

The row is loaded (or created by TicketOpened), every event of the batch is applied in stream order,
and the row is written back: a ticket stream is one partition, so its events arrive in order, and
nothing here depends on the order of other streams (chat messages come in as TicketMessageLinked).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from shared.events.base import Event
from shared.events.tickets import (
    TicketAssigned,
    TicketEscalated,
    TicketMessageLinked,
    TicketOpened,
    TicketPriorityChanged,
    TicketRated,
    TicketSlaBreached,
    TicketSlaClockFulfilled,
    TicketSlaClockPaused,
    TicketSlaClockResumed,
    TicketSlaClockStarted,
    TicketStatusChanged,
    TicketTagged,
    TicketUnassigned,
)

ACTIVE = ("open", "pending", "reopened")
# Clocks whose due time still counts: running, or breached and never fulfilled (still overdue).
DUE_STATES = ("running", "breached")
# Messages by the built-in support contact or by a service are automatic, not an agent's reply.
AUTOMATIC_PREFIXES = ("ledgerline:", "system:")


@dataclass(slots=True)
class TicketRecord:
    """The columns of rm_tickets (support_tables.py documents them)."""

    ticket_id: str
    requester_id: str
    segment: str
    channel: str
    subject: str
    priority: str
    line: int
    opened_at: datetime
    updated_at: datetime
    conversation_id: str | None = None
    status: str = "open"
    assignee_id: str | None = None
    handler_id: str | None = None
    first_response_at: datetime | None = None
    first_response_by: str | None = None
    agent_replies: int = 0
    replies_at_resolve: int | None = None
    first_resolved_at: datetime | None = None
    resolved_at: datetime | None = None
    first_reopened_at: datetime | None = None
    reopen_count: int = 0
    closed_at: datetime | None = None
    pending_since: datetime | None = None
    pending_periods: list[list[str]] = field(default_factory=list)
    waiting_since: datetime | None = None
    tags: list[str] = field(default_factory=list)
    rating: int | None = None
    rating_comment: str | None = None
    rated_at: datetime | None = None
    clocks: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_due_at: datetime | None = None
    next_due_clock: str | None = None
    version: int = 0

    @classmethod
    def opened(cls, e: TicketOpened, at: datetime) -> TicketRecord:
        return cls(
            ticket_id=e.ticket_id,
            conversation_id=e.conversation_id,
            requester_id=e.requester_id,
            segment=e.segment,
            channel=e.channel,
            subject=e.subject,
            priority=e.priority,
            line=e.line,
            opened_at=at,
            updated_at=at,
            waiting_since=at,  # the opening message waits for a first response
        )

    @classmethod
    def from_row(cls, row: Any) -> TicketRecord:
        values = row._mapping
        return cls(**{f.name: values[f.name] for f in fields(cls)})

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


def apply(r: TicketRecord, e: Event, at: datetime, version: int) -> None:
    """Fold one event of r's stream (`at`: its occurred_at; `version`: its stream version)."""
    r.version, r.updated_at = max(r.version, version), at
    match e:
        case TicketAssigned():
            r.assignee_id = e.agent_id
            if r.first_resolved_at is None:
                r.handler_id = e.agent_id
        case TicketUnassigned():
            _unassign(r)
        case TicketEscalated():
            r.line = e.to_line
            _unassign(r)  # back to the new line's queue (as the write side decides)
        case TicketStatusChanged():
            _status(r, e, at)
        case TicketPriorityChanged():
            r.priority = e.to_priority
        case TicketTagged():
            r.tags = sorted((set(r.tags) | set(e.added)) - set(e.removed))
        case TicketRated():
            r.rating, r.rating_comment, r.rated_at = e.score, e.comment, at
        case TicketMessageLinked():
            _linked(r, e, at)
        case _:
            _clock(r, e)


def _unassign(r: TicketRecord) -> None:
    r.assignee_id = None
    if r.first_resolved_at is None:
        r.handler_id = None


def _status(r: TicketRecord, e: TicketStatusChanged, at: datetime) -> None:
    if r.pending_since is not None and e.to_status != "pending":
        if r.first_resolved_at is None:
            r.pending_periods = [*r.pending_periods, [r.pending_since.isoformat(), at.isoformat()]]
        r.pending_since = None
    r.status = e.to_status
    if e.to_status == "pending":
        r.pending_since, r.waiting_since = at, None  # the desk waits on the requester now
    elif e.to_status == "resolved":
        _resolved(r, e, at)
    elif e.to_status == "closed":
        r.closed_at, r.waiting_since = at, None
    elif e.to_status == "reopened":
        r.reopen_count += 1
        if r.first_resolved_at is not None and r.first_reopened_at is None:
            r.first_reopened_at = at
        r.waiting_since = r.waiting_since or at


def _resolved(r: TicketRecord, e: TicketStatusChanged, at: datetime) -> None:
    r.resolved_at, r.waiting_since = at, None
    if r.first_resolved_at is not None:
        return
    r.first_resolved_at, r.replies_at_resolve = at, r.agent_replies
    if r.assignee_id is not None:
        r.handler_id = r.assignee_id
    elif e.by != r.requester_id and not e.by.startswith(AUTOMATIC_PREFIXES):
        r.handler_id = e.by  # resolved by an agent who was not (or no longer) assigned


def _linked(r: TicketRecord, e: TicketMessageLinked, at: datetime) -> None:
    if e.author_id == r.requester_id:
        r.waiting_since = r.waiting_since or at
        return
    if e.author_id.startswith(AUTOMATIC_PREFIXES):
        return
    r.agent_replies += 1
    r.waiting_since = None
    if r.first_response_at is None:
        r.first_response_at, r.first_response_by = at, e.author_id


def _clock(r: TicketRecord, e: Event) -> None:
    clocks = {k: dict(v) for k, v in r.clocks.items()}
    match e:
        case TicketSlaClockStarted():
            clocks[e.clock] = {"state": "running", "due_at": e.due_at.isoformat()}
        case TicketSlaClockResumed():
            clocks[e.clock] = {"state": "running", "due_at": e.due_at.isoformat()}
        case TicketSlaClockPaused() if e.clock in clocks:
            clocks[e.clock]["state"] = "paused"
        case TicketSlaClockFulfilled() if e.clock in clocks:
            clocks[e.clock]["state"] = "fulfilled"
        case TicketSlaBreached():
            clocks[e.clock] = {"state": "breached", "due_at": e.due_at.isoformat()}
        case _:
            return
    r.clocks = clocks
    due = sorted((datetime.fromisoformat(v["due_at"]), k) for k, v in clocks.items() if v["state"] in DUE_STATES)
    r.next_due_at, r.next_due_clock = due[0] if due else (None, None)
