"""Request and answer bodies of the support desk's commands (docs/support.md). Strict and closed, as
every body of the API (routes/schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from services.gateway.routes.schemas import Body, IdText
from services.tickets.domain.state import TicketState
from shared.events.fields import CHANNEL_MAX, COMMENT_MAX, ID_MAX, NOTE_TEXT_MAX, SUBJECT_MAX, TAG_MAX, TAGS_MAX
from shared.events.tickets import Priority, Status

TagText = Annotated[str, StringConstraints(min_length=1, max_length=TAG_MAX, strip_whitespace=True)]
# A bulk request's bound: a supervisor's screen of tickets, not the whole backlog.
BULK_MAX = 500


class NewTicket(Body):
    subject: Annotated[str, StringConstraints(min_length=1, max_length=SUBJECT_MAX)]
    channel: Annotated[str, StringConstraints(min_length=1, max_length=CHANNEL_MAX)] = "web_form"
    priority: Priority | None = None
    requester_id: IdText | None = None
    segment: Literal["customers", "suppliers"] | None = None
    client_ticket_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class Assign(Body):
    agent_id: IdText | None


class Escalate(Body):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=COMMENT_MAX)] | None = None
    to_line: Literal[1, 2, 3] | None = None


class StatusChange(Body):
    status: Status


class PriorityChange(Body):
    priority: Priority


class Note(Body):
    text: Annotated[str, StringConstraints(min_length=1, max_length=NOTE_TEXT_MAX)]


class Tags(Body):
    tags: Annotated[list[TagText], Field(max_length=TAGS_MAX)]


class Rating(Body):
    score: Annotated[int, Field(ge=1, le=5)]
    comment: Annotated[str, StringConstraints(min_length=1, max_length=COMMENT_MAX)] | None = None


class Availability(Body):
    available: bool


class Bulk(Body):
    """One action for many tickets; the fields of that action's own body beside it."""

    ticket_ids: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX)]],
        Field(min_length=1, max_length=BULK_MAX),
    ]
    action: Literal["status", "priority", "assign", "escalate", "tags"]
    status: Status | None = None
    priority: Priority | None = None
    agent_id: IdText | None = None
    to_line: Literal[1, 2, 3] | None = None
    reason: Annotated[str, StringConstraints(min_length=1, max_length=COMMENT_MAX)] | None = None
    tags: Annotated[list[TagText], Field(max_length=TAGS_MAX)] | None = None


class TicketOut(BaseModel):
    """The ticket as the write side holds it right after the command (the read model, GET
    /v1/tickets/{id}, has its history)."""

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
    tags: list[str]
    rated: bool
    opened_at: datetime
    version: int

    @classmethod
    def of(cls, state: TicketState) -> TicketOut:
        assert state.opened_at is not None
        return cls(
            ticket_id=state.ticket_id,
            requester_id=state.requester_id,
            conversation_id=state.conversation_id,
            segment=state.segment,
            channel=state.channel,
            subject=state.subject,
            priority=state.priority,
            line=state.line,
            status=state.status,
            assignee_id=state.assignee,
            tags=sorted(state.tags),
            rated=state.rated,
            opened_at=state.opened_at,
            version=state.version,
        )


class NoteOut(BaseModel):
    note_id: str
    ticket: TicketOut


class AvailabilityOut(BaseModel):
    agent_id: str
    available: bool


class BulkItem(BaseModel):
    ticket_id: str
    ok: bool
    status: int
    ticket: TicketOut | None = None
    detail: str | None = None


class BulkOut(BaseModel):
    succeeded: int
    failed: int
    results: list[BulkItem]
