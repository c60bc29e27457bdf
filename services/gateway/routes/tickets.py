"""Ticket commands (docs/support.md): open from a web form or e-mail, assign, escalate, status,
priority, notes, tags, rating, and bulk actions. The GET side (lists, history, queues, metrics) is
the read models'."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import APIRouter, Response

from services.gateway.auth import Principal
from services.gateway.commands.tickets import TicketResult, TicketService
from services.gateway.errors import Conflict, GatewayError, Invalid, NotAllowed, NotFound
from services.gateway.routes.deps import Caller, Services
from services.gateway.routes.ticket_schemas import (
    Assign,
    Bulk,
    BulkItem,
    BulkOut,
    Escalate,
    NewTicket,
    Note,
    NoteOut,
    PriorityChange,
    Rating,
    StatusChange,
    Tags,
    TicketOut,
)

router = APIRouter(tags=["tickets"])
T = TypeVar("T")
# How a refused ticket of a bulk request is reported (the single commands answer the same statuses).
STATUS_OF: tuple[tuple[type[GatewayError], int], ...] = (
    (NotFound, 404),
    (NotAllowed, 403),
    (Invalid, 422),
    (Conflict, 409),
)


@router.post("/tickets", status_code=201, response_model=TicketOut)
async def open_ticket(body: NewTicket, principal: Caller, gw: Services, response: Response) -> TicketOut:
    """201 with the new ticket (line 1, auto-assigned by the tickets worker); 200 with the same one
    when `client_ticket_id` was used before by this requester."""
    result, created = await gw.tickets.open(
        principal, body.subject, body.channel, body.priority, body.requester_id, body.segment, body.client_ticket_id
    )
    if not created:
        response.status_code = 200
    return TicketOut.of(result.state)


@router.post("/tickets/bulk", response_model=BulkOut)
async def bulk(body: Bulk, principal: Caller, gw: Services) -> BulkOut:
    """Supervisors: one action over many tickets. Each ticket gets its own events; one that fails is
    reported in its item (status and detail) and the others proceed."""
    command = _bulk_command(gw.tickets, principal, body)
    outcomes = await gw.tickets.bulk(principal, body.ticket_ids, command)
    items = [_item(t, o) for t, o in zip(body.ticket_ids, outcomes, strict=True)]
    ok = sum(1 for i in items if i.ok)
    return BulkOut(succeeded=ok, failed=len(items) - ok, results=items)


@router.post("/tickets/{ticket_id}/assign", response_model=TicketOut)
async def assign(ticket_id: str, body: Assign, principal: Caller, gw: Services) -> TicketOut:
    """Supervisors assign or reassign (`agent_id: null` puts it back in the queue); an agent may take
    a ticket they can see (`agent_id` = themselves)."""
    return TicketOut.of((await gw.tickets.assign(principal, ticket_id, body.agent_id)).state)


@router.post("/tickets/{ticket_id}/escalate", response_model=TicketOut)
async def escalate(ticket_id: str, body: Escalate, principal: Caller, gw: Services) -> TicketOut:
    """Up one line (or to `to_line`); a lower line is a supervisor's de-escalation."""
    return TicketOut.of((await gw.tickets.escalate(principal, ticket_id, body.to_line, body.reason)).state)


@router.post("/tickets/{ticket_id}/status", response_model=TicketOut)
async def set_status(ticket_id: str, body: StatusChange, principal: Caller, gw: Services) -> TicketOut:
    return TicketOut.of((await gw.tickets.set_status(principal, ticket_id, body.status)).state)


@router.post("/tickets/{ticket_id}/priority", response_model=TicketOut)
async def set_priority(ticket_id: str, body: PriorityChange, principal: Caller, gw: Services) -> TicketOut:
    return TicketOut.of((await gw.tickets.set_priority(principal, ticket_id, body.priority)).state)


@router.post("/tickets/{ticket_id}/notes", status_code=201, response_model=NoteOut)
async def add_note(ticket_id: str, body: Note, principal: Caller, gw: Services) -> NoteOut:
    """An internal note: agents and supervisors see it, the requester never does."""
    result = await gw.tickets.add_note(principal, ticket_id, body.text)
    assert result.note_id is not None
    return NoteOut(note_id=result.note_id, ticket=TicketOut.of(result.state))


@router.post("/tickets/{ticket_id}/tags", response_model=TicketOut)
async def set_tags(ticket_id: str, body: Tags, principal: Caller, gw: Services) -> TicketOut:
    """The ticket's tags become exactly `tags`."""
    return TicketOut.of((await gw.tickets.set_tags(principal, ticket_id, body.tags)).state)


@router.post("/tickets/{ticket_id}/rating", response_model=TicketOut)
async def rate(ticket_id: str, body: Rating, principal: Caller, gw: Services) -> TicketOut:
    """The requester's CSAT (1..5), once, after the ticket was resolved."""
    return TicketOut.of((await gw.tickets.rate(principal, ticket_id, body.score, body.comment)).state)


def _bulk_command(service: TicketService, principal: Principal, body: Bulk) -> Callable[[str], Awaitable[TicketResult]]:
    """The per-ticket command of a bulk body; 422 (for the whole request) when its field is missing."""
    match body.action:
        case "status":
            status = _required("status", body.status)
            return lambda t: service.set_status(principal, t, status)
        case "priority":
            priority = _required("priority", body.priority)
            return lambda t: service.set_priority(principal, t, priority)
        case "assign":
            return lambda t: service.assign(principal, t, body.agent_id)
        case "escalate":
            return lambda t: service.escalate(principal, t, body.to_line, body.reason)
        case "tags":
            tags = _required("tags", body.tags)
            return lambda t: service.set_tags(principal, t, tags)


def _required(field: str, value: T | None) -> T:
    if value is None:
        raise Invalid(field, "is required for this action")
    return value


def _item(ticket_id: str, outcome: TicketResult | GatewayError) -> BulkItem:
    if isinstance(outcome, TicketResult):
        return BulkItem(ticket_id=ticket_id, ok=True, status=200, ticket=TicketOut.of(outcome.state))
    status = next((code for kind, code in STATUS_OF if isinstance(outcome, kind)), 400)
    return BulkItem(ticket_id=ticket_id, ok=False, status=status, detail=str(outcome))
