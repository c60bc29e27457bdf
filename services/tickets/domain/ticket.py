"""The ticket's decisions (pure, no I/O): given the state and a command, the events to append.

Each returns a list of events (empty: nothing to change) or raises a domain error
(services.gateway.errors: they carry data and know nothing of HTTP). Callers check who may do what
(roles, visibility) before; here is what only the ticket's state can tell.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import ValidationError

from services.gateway.errors import Conflict, Invalid, NotFound
from services.tickets.domain.state import ACTIVE, TicketState
from shared.events.base import Event
from shared.events.tickets import (
    EscalationReason,
    Priority,
    Status,
    TicketAssigned,
    TicketEscalated,
    TicketMessageLinked,
    TicketNoteAdded,
    TicketOpened,
    TicketPriorityChanged,
    TicketRated,
    TicketStatusChanged,
    TicketTagged,
    TicketUnassigned,
)

E = TypeVar("E", bound=Event)

TOP_LINE = 3
# Where a status may go. `reopened` is for a finished ticket that is worked on again; an active one
# moves between open and pending (pending: waiting on the requester, SLA clocks paused).
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"pending", "resolved", "closed"}),
    "reopened": frozenset({"open", "pending", "resolved", "closed"}),
    "pending": frozenset({"open", "resolved", "closed"}),
    "resolved": frozenset({"reopened", "closed"}),
    "closed": frozenset({"reopened"}),
}


def stream_id(ticket_id: str) -> str:
    return f"ticket-{ticket_id}"


def open_ticket(
    ticket_id: str,
    requester_id: str,
    segment: str,
    channel: str,
    subject: str,
    priority: str,
    conversation_id: str | None = None,
) -> list[Event]:
    """A new ticket; it always starts on line 1 (escalation moves it)."""
    return [
        event(
            TicketOpened,
            ticket_id=ticket_id,
            conversation_id=conversation_id,
            requester_id=requester_id,
            segment=segment,
            channel=channel,
            subject=subject,
            priority=priority,
            line=1,
        )
    ]


def assign(state: TicketState, agent_id: str, by: str) -> list[Event]:
    _active(state)
    if state.assignee == agent_id:
        return []
    return [
        event(
            TicketAssigned,
            ticket_id=state.ticket_id,
            agent_id=agent_id,
            line=state.line,
            assigned_by=by,
            previous_agent_id=state.assignee,
        )
    ]


def unassign(state: TicketState, by: str, reason: str = "manual") -> list[Event]:
    _exists(state)
    if state.assignee is None:
        return []
    return [
        event(TicketUnassigned, ticket_id=state.ticket_id, agent_id=state.assignee, unassigned_by=by, reason=reason)
    ]


def escalate(state: TicketState, by: str, to_line: int | None, comment: str | None, *, may_lower: bool) -> list[Event]:
    """Up one line by default; a lower line (de-escalation) only when `may_lower` (supervisors)."""
    _active(state)
    target = state.line + 1 if to_line is None else to_line
    if target == state.line:
        return []
    if target > TOP_LINE:
        raise Conflict(f"ticket {state.ticket_id!r} is on line {TOP_LINE} already, the top line")
    reason: EscalationReason = "manual"
    if target < state.line:
        if not may_lower:
            raise Invalid("to_line", "only a supervisor moves a ticket to a lower line")
        reason = "de_escalation"
    fields = {"from_line": state.line, "to_line": target, "reason": reason, "by": by, "comment": comment}
    return [event(TicketEscalated, ticket_id=state.ticket_id, **fields)]


def change_status(state: TicketState, to_status: str, by: str) -> list[Event]:
    _exists(state)
    if to_status == state.status:
        return []
    if to_status not in TRANSITIONS.get(state.status, frozenset()):
        raise Conflict(f"ticket {state.ticket_id!r} cannot go from {state.status} to {to_status}")
    return [event(TicketStatusChanged, ticket_id=state.ticket_id, from_status=state.status, to_status=to_status, by=by)]


def change_priority(state: TicketState, priority: str, by: str) -> list[Event]:
    _exists(state)
    if priority == state.priority:
        return []
    fields = {"from_priority": state.priority, "to_priority": priority, "by": by}
    return [event(TicketPriorityChanged, ticket_id=state.ticket_id, **fields)]


def add_note(state: TicketState, note_id: str, author_id: str, text: str) -> list[Event]:
    _exists(state)
    return [event(TicketNoteAdded, ticket_id=state.ticket_id, note_id=note_id, author_id=author_id, text=text)]


def set_tags(state: TicketState, tags: Iterable[str], by: str) -> list[Event]:
    """The ticket's tags become exactly `tags`: one event with what is added and what is removed."""
    _exists(state)
    wanted = set(tags)
    added, removed = tuple(sorted(wanted - state.tags)), tuple(sorted(state.tags - wanted))
    if not added and not removed:
        return []
    return [event(TicketTagged, ticket_id=state.ticket_id, added=added, removed=removed, by=by)]


def rate(state: TicketState, by: str, score: int, comment: str | None) -> list[Event]:
    """CSAT by the requester, once, after the ticket was resolved."""
    _exists(state)
    if state.status not in ("resolved", "closed"):
        raise Conflict(f"ticket {state.ticket_id!r} is {state.status}: rate it once it is resolved")
    if state.rated:
        raise Conflict(f"ticket {state.ticket_id!r} was rated already")
    return [event(TicketRated, ticket_id=state.ticket_id, score=score, comment=comment, by=by)]


def link_message(
    state: TicketState, conversation_id: str, message_id: str, seq: int, author_id: str, by: str
) -> list[Event]:
    """A chat message of the ticket's conversation joins its history. The requester's reply takes a
    pending ticket back to open (its clocks resume) and reopens a resolved or closed one."""
    if message_id in state.linked:
        return []
    linked = event(
        TicketMessageLinked,
        ticket_id=state.ticket_id,
        conversation_id=conversation_id,
        message_id=message_id,
        seq=seq,
        author_id=author_id,
        public=True,
    )
    if author_id != state.requester_id:
        return [linked] if state.status in ACTIVE else []
    to: Status | None = {"pending": "open", "resolved": "reopened", "closed": "reopened"}.get(state.status)  # type: ignore[assignment]
    if to is None:
        return [linked]
    changed = event(TicketStatusChanged, ticket_id=state.ticket_id, from_status=state.status, to_status=to, by=by)
    return [changed, linked]


def _exists(state: TicketState) -> None:
    if not state.exists:
        raise NotFound("ticket", state.ticket_id)


def _active(state: TicketState) -> None:
    _exists(state)
    if state.status not in ACTIVE:
        raise Conflict(f"ticket {state.ticket_id!r} is {state.status}; reopen it first")


def event(model: type[E], /, **fields: Any) -> E:
    """The catalogue checks the event once more; a failure here is still the caller's input."""
    try:
        return model(**fields)
    except ValidationError as e:
        first = e.errors()[0]
        raise Invalid(".".join(str(p) for p in first["loc"]) or model.__name__, first["msg"]) from e


__all__ = ["Priority", "TicketState", "stream_id"]
