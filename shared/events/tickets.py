"""Ticket stream (`ticket-<uuid>`): the support desk's lifecycle, lines and SLA clocks.

Personal data: the subject (users describe their problem with names in it), internal note texts,
escalation and rating comments. Ids, lines, priorities, clocks and tags are not personal.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, StrictBool, model_validator

from shared.events.base import Event
from shared.events.fields import (
    TAGS_MAX,
    Channel,
    Comment,
    Id,
    Line,
    NoteText,
    PositiveSeconds,
    Score,
    Seconds,
    Segment,
    Seq,
    Subject,
    Tag,
    UtcDatetime,
)
from shared.events.registry import registry

Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["open", "pending", "resolved", "closed", "reopened"]
Clock = Literal["first_response", "next_response", "resolution"]
EscalationReason = Literal["manual", "sla_first_response", "sla_resolution", "de_escalation"]


@registry.register
class TicketOpened(Event):
    """`channel` is "chat", "web_form", "email" or an integration's name; `conversation_id` is set
    when the ticket was opened from a support conversation."""

    type: Literal["TicketOpened"] = "TicketOpened"
    schema_version: Literal[1] = 1
    personal_fields: ClassVar[frozenset[str]] = frozenset({"subject"})

    ticket_id: Id
    conversation_id: Id | None = None
    requester_id: Id
    segment: Segment
    channel: Channel
    subject: Subject
    priority: Priority
    line: Line


@registry.register
class TicketAssigned(Event):
    """`assigned_by` is a supervisor's id, or `system:tickets` for auto-assignment."""

    type: Literal["TicketAssigned"] = "TicketAssigned"
    schema_version: Literal[1] = 1

    ticket_id: Id
    agent_id: Id
    line: Line
    assigned_by: Id
    previous_agent_id: Id | None = None


@registry.register
class TicketUnassigned(Event):
    """The ticket is back in its line's queue: by hand, or because its agent became unavailable."""

    type: Literal["TicketUnassigned"] = "TicketUnassigned"
    schema_version: Literal[1] = 1

    ticket_id: Id
    agent_id: Id
    unassigned_by: Id
    reason: Literal["manual", "agent_unavailable"]


@registry.register
class TicketEscalated(Event):
    """The ticket moves to another line. SLA escalations go up, `de_escalation` goes down."""

    type: Literal["TicketEscalated"] = "TicketEscalated"
    schema_version: Literal[1] = 1
    personal_fields: ClassVar[frozenset[str]] = frozenset({"comment"})

    ticket_id: Id
    from_line: Line
    to_line: Line
    reason: EscalationReason
    by: Id
    comment: Comment | None = None

    @model_validator(mode="after")
    def _direction_fits_reason(self) -> Self:
        if self.from_line == self.to_line:
            raise ValueError("to_line must differ from from_line")
        down = self.to_line < self.from_line
        if down != (self.reason == "de_escalation"):
            raise ValueError("only a de_escalation moves a ticket to a lower line")
        return self


@registry.register
class TicketSlaClockStarted(Event):
    type: Literal["TicketSlaClockStarted"] = "TicketSlaClockStarted"
    schema_version: Literal[1] = 1

    ticket_id: Id
    clock: Clock
    target_seconds: PositiveSeconds
    due_at: UtcDatetime


@registry.register
class TicketSlaClockPaused(Event):
    """Paused while the ticket waits on the requester (pending) or outside business hours.
    `remaining_seconds` is negative when the clock was already past due."""

    type: Literal["TicketSlaClockPaused"] = "TicketSlaClockPaused"
    schema_version: Literal[1] = 1

    ticket_id: Id
    clock: Clock
    remaining_seconds: int = Field(strict=True)


@registry.register
class TicketSlaClockResumed(Event):
    type: Literal["TicketSlaClockResumed"] = "TicketSlaClockResumed"
    schema_version: Literal[1] = 1

    ticket_id: Id
    clock: Clock
    due_at: UtcDatetime


@registry.register
class TicketSlaClockFulfilled(Event):
    """The clock's goal was met (a first response, a resolution); `elapsed_seconds` excludes pauses."""

    type: Literal["TicketSlaClockFulfilled"] = "TicketSlaClockFulfilled"
    schema_version: Literal[1] = 1

    ticket_id: Id
    clock: Clock
    elapsed_seconds: Seconds


@registry.register
class TicketSlaBreached(Event):
    """Appended once per clock by the timer that fired (deterministic event id), with TicketEscalated."""

    type: Literal["TicketSlaBreached"] = "TicketSlaBreached"
    schema_version: Literal[1] = 1

    ticket_id: Id
    clock: Clock
    due_at: UtcDatetime


@registry.register
class TicketStatusChanged(Event):
    type: Literal["TicketStatusChanged"] = "TicketStatusChanged"
    schema_version: Literal[1] = 1

    ticket_id: Id
    from_status: Status
    to_status: Status
    by: Id

    @model_validator(mode="after")
    def _status_changes(self) -> Self:
        if self.from_status == self.to_status:
            raise ValueError("to_status must differ from from_status")
        return self


@registry.register
class TicketPriorityChanged(Event):
    """`from_priority`/`to_priority`: `from` is a Python keyword, and the names match from_line."""

    type: Literal["TicketPriorityChanged"] = "TicketPriorityChanged"
    schema_version: Literal[1] = 1

    ticket_id: Id
    from_priority: Priority
    to_priority: Priority
    by: Id

    @model_validator(mode="after")
    def _priority_changes(self) -> Self:
        if self.from_priority == self.to_priority:
            raise ValueError("to_priority must differ from from_priority")
        return self


@registry.register
class TicketNoteAdded(Event):
    """An internal note: agents see it, the requester never does."""

    type: Literal["TicketNoteAdded"] = "TicketNoteAdded"
    schema_version: Literal[1] = 1
    personal_fields: ClassVar[frozenset[str]] = frozenset({"text"})

    ticket_id: Id
    note_id: Id
    author_id: Id
    text: NoteText


@registry.register
class TicketTagged(Event):
    type: Literal["TicketTagged"] = "TicketTagged"
    schema_version: Literal[1] = 1

    ticket_id: Id
    added: tuple[Tag, ...] = Field(default=(), max_length=TAGS_MAX)
    removed: tuple[Tag, ...] = Field(default=(), max_length=TAGS_MAX)
    by: Id

    @model_validator(mode="after")
    def _tags_change(self) -> Self:
        if not self.added and not self.removed:
            raise ValueError("added or removed must name a tag")
        if set(self.added) & set(self.removed):
            raise ValueError("a tag cannot be both added and removed")
        return self


@registry.register
class TicketRated(Event):
    """Customer satisfaction (CSAT): 1 (bad) to 5 (excellent)."""

    type: Literal["TicketRated"] = "TicketRated"
    schema_version: Literal[1] = 1
    personal_fields: ClassVar[frozenset[str]] = frozenset({"comment"})

    ticket_id: Id
    score: Score
    comment: Comment | None = None
    by: Id


@registry.register
class TicketMessageLinked(Event):
    """A chat message belongs to this ticket's history. The tickets worker appends it when a message
    arrives in the ticket's support conversation, so that first/next-response SLA clocks and the
    ticket's timeline can tell a requester's message (`public`) from an agent's reply, without
    copying the text (which stays in the conversation stream, erased with it)."""

    type: Literal["TicketMessageLinked"] = "TicketMessageLinked"
    schema_version: Literal[1] = 1

    ticket_id: Id
    conversation_id: Id
    message_id: Id
    seq: Seq
    author_id: Id
    public: StrictBool


@registry.register
class AgentAvailabilityChanged(Event):
    """An agent said they take tickets (`available`) or not, on stream `agent-<id>`. Without one, an
    agent is available while they have a live session (presence)."""

    type: Literal["AgentAvailabilityChanged"] = "AgentAvailabilityChanged"
    schema_version: Literal[1] = 1

    agent_id: Id
    available: StrictBool
