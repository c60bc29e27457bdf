"""What the support queries answer: frozen dataclasses shaped like the HTTP answers of
`GET /v1/tickets`, `/v1/tickets/{id}`, `/v1/support/queues` and `/v1/support/metrics`
(docs/support-metrics.md). Datetimes are UTC-aware; durations are seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class TicketSummary:
    """One entry of `GET /v1/tickets` (agents and supervisors)."""

    ticket_id: str
    requester_id: str
    conversation_id: str | None
    segment: str
    channel: str
    subject: str
    priority: str
    line: int
    status: str
    assignee_id: str | None
    opened_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    due_at: datetime | None
    """The earliest due time of a running (or breached) SLA clock; None when no clock runs."""
    due_clock: str | None
    waiting_since: datetime | None
    """Since when the requester waits for the desk; None when the desk waits on the requester."""
    tags: list[str]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One ticket event, in stream order. `text` is the chat message's text for TicketMessageLinked
    (from the chat read model; None when that message is not (yet) there)."""

    version: int
    type: str
    occurred_at: datetime
    actor: str
    data: dict[str, Any]
    text: str | None = None


@dataclass(frozen=True, slots=True)
class TicketDetail:
    """`GET /v1/tickets/{id}` for the desk: the ticket and its full history (notes included)."""

    ticket: TicketSummary
    handler_id: str | None
    reopen_count: int
    agent_replies: int
    clocks: dict[str, dict[str, Any]]
    rating: int | None
    rating_comment: str | None
    history: list[HistoryEntry]


@dataclass(frozen=True, slots=True)
class PublicReply:
    message_id: str
    seq: int
    author_id: str
    from_requester: bool
    text: str
    """Empty when the message was retracted (or is not in the chat read model yet)."""
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class RequesterTicket:
    """`GET /v1/tickets/{id}` for its requester: status and the public conversation only."""

    ticket_id: str
    status: str
    line: int
    subject: str
    opened_at: datetime
    replies: list[PublicReply]
    rating: int | None


@dataclass(frozen=True, slots=True)
class QueueTicket:
    ticket_id: str
    requester_id: str
    subject: str
    priority: str
    status: str
    assignee_id: str | None
    opened_at: datetime
    due_at: datetime | None
    due_clock: str | None
    overdue: bool
    waiting_since: datetime | None
    waiting_seconds: float | None
    """now − waiting_since; None when the desk waits on the requester."""


@dataclass(frozen=True, slots=True)
class Queue:
    """The open (open, pending, reopened) tickets of one line and segment, in SLA order: the
    earliest due time first, tickets without a running clock last (oldest first)."""

    line: int
    segment: str
    tickets: list[QueueTicket] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Durations:
    """Seconds over `count` tickets: raw (wall clock) and business hours (the SLA calendar)."""

    count: int
    mean_seconds: float | None
    median_seconds: float | None
    business_mean_seconds: float | None
    business_median_seconds: float | None


@dataclass(frozen=True, slots=True)
class Ratio:
    numerator: int
    denominator: int
    rate: float | None
    """numerator / denominator; None when the denominator is 0."""


@dataclass(frozen=True, slots=True)
class Backlog:
    at: datetime
    open: int
    """Tickets open, pending or reopened now."""
    overdue: int
    """Of those, the ones whose running (or breached) SLA clock was due before `at`."""


@dataclass(frozen=True, slots=True)
class Csat:
    ratings: int
    satisfied: int
    """Ratings of 4 or 5."""
    share: float | None
    mean_score: float | None


@dataclass(frozen=True, slots=True)
class SupportMetrics:
    """`GET /v1/support/metrics`: every figure is defined in docs/support-metrics.md."""

    period_from: datetime
    period_to: datetime
    line: int | None
    segment: str | None
    agent: str | None
    opened: int
    first_response: Durations
    handle_time: Durations
    first_contact_resolution: Ratio
    resolution_rate: Ratio
    overdue_backlog: Backlog
    csat: Csat
