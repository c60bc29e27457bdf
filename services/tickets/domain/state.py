"""A ticket's state, folded from its stream's events (pure, no I/O).

What the decisions need: lifecycle (status, line, assignee, priority, tags), the facts the SLA clocks
follow (opened, first agent reply, requester waiting, status since when), and the clocks as their
own events last left them. Escalation returns the ticket to the new line's queue: it clears the
assignee (the new line's agent is assigned next).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from shared.events.base import Event
from shared.events.tickets import (
    Clock,
    Priority,
    Status,
    TicketAssigned,
    TicketEscalated,
    TicketMessageLinked,
    TicketNoteAdded,
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

ACTIVE: frozenset[str] = frozenset({"open", "pending", "reopened"})
ClockStatus = Literal["running", "paused", "fulfilled", "breached"]


@dataclass(slots=True)
class ClockState:
    status: ClockStatus
    target: int
    started_at: datetime
    due_at: datetime
    remaining: int = 0  # while paused: business seconds left (negative: past due)


@dataclass(slots=True)
class TicketState:
    ticket_id: str
    version: int = 0
    requester_id: str = ""
    conversation_id: str | None = None
    segment: str = "customers"
    channel: str = ""
    subject: str = ""
    priority: Priority = "normal"
    line: int = 1
    status: Status = "open"
    status_since: datetime | None = None
    opened_at: datetime | None = None
    active_since: datetime | None = None  # opened, or last reopened
    resolved_at: datetime | None = None
    assignee: str | None = None
    tags: set[str] = field(default_factory=set)
    rated: bool = False
    first_reply_at: datetime | None = None  # the first agent reply
    last_reply_at: datetime | None = None  # the last agent reply
    waiting_since: datetime | None = None  # the requester wrote after the last agent reply
    linked: set[str] = field(default_factory=set)  # message ids
    clocks: dict[str, ClockState] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.opened_at is not None

    @property
    def active(self) -> bool:
        return self.exists and self.status in ACTIVE


def apply(state: TicketState, event: Event, at: datetime) -> TicketState:
    """Fold one event (`at`: its occurred_at) into `state`, in place."""
    match event:
        case TicketOpened():
            state.requester_id, state.conversation_id = event.requester_id, event.conversation_id
            state.segment, state.channel, state.priority = event.segment, event.channel, event.priority
            state.subject = event.subject
            state.line, state.status = event.line, "open"
            state.opened_at = state.active_since = state.status_since = at
        case TicketAssigned():
            state.assignee = event.agent_id
        case TicketUnassigned():
            state.assignee = None
        case TicketEscalated():
            state.line, state.assignee = event.to_line, None
        case TicketStatusChanged():
            _status(state, event.to_status, at)
        case TicketPriorityChanged():
            state.priority = event.to_priority
        case TicketTagged():
            state.tags = (state.tags | set(event.added)) - set(event.removed)
        case TicketRated():
            state.rated = True
        case TicketMessageLinked():
            _linked(state, event, at)
        case TicketNoteAdded():
            pass
        case _:
            _clock(state, event, at)
    return state


def _status(state: TicketState, to: Status, at: datetime) -> None:
    state.status, state.status_since = to, at
    if to == "resolved":
        state.resolved_at = at
    if to == "reopened":
        state.active_since = at
        # A reopened ticket is worked on again: its resolution clock runs anew.
        clock = state.clocks.get("resolution")
        if clock is not None and clock.status == "fulfilled":
            del state.clocks["resolution"]


def _linked(state: TicketState, event: TicketMessageLinked, at: datetime) -> None:
    state.linked.add(event.message_id)
    if event.author_id == state.requester_id:
        if state.waiting_since is None and state.first_reply_at is not None:
            state.waiting_since = at
        return
    state.first_reply_at = state.first_reply_at or at
    state.last_reply_at, state.waiting_since = at, None


def _clock(state: TicketState, event: Event, at: datetime) -> None:
    match event:
        case TicketSlaClockStarted():
            state.clocks[event.clock] = ClockState("running", event.target_seconds, at, event.due_at)
        case TicketSlaClockPaused():
            if (c := state.clocks.get(event.clock)) is not None:
                c.status, c.remaining = "paused", event.remaining_seconds
        case TicketSlaClockResumed():
            if (c := state.clocks.get(event.clock)) is not None:
                c.status, c.due_at = "running", event.due_at
        case TicketSlaClockFulfilled():
            if (c := state.clocks.get(event.clock)) is not None:
                c.status = "fulfilled"
        case TicketSlaBreached():
            if (c := state.clocks.get(event.clock)) is not None:
                c.status = "breached"


def fold(ticket_id: str, events: list[tuple[Event, datetime]]) -> TicketState:
    state = TicketState(ticket_id)
    for event, at in events:
        apply(state, event, at)
        state.version += 1
    return state


def clock_of(state: TicketState, clock: Clock) -> ClockState | None:
    return state.clocks.get(clock)
