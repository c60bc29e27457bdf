"""The support desk's reads (docs/support-metrics.md): ticket list, one ticket with its history,
the queues per line and segment, and the metrics. The commands (POST) are in routes/tickets.py.

Who sees what (the same rule as the write side's): supervisors and admins see every ticket; an
agent sees the tickets of their lines in their segment (line 3: every segment) and the tickets
assigned to them; a requester sees
their own ticket's status and public replies only; anyone else gets 404 for a ticket, and 403 for
the desk's lists (whose existence is no secret).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from services.gateway.auth import Principal
from services.gateway.errors import Invalid, NotAllowed, NotFound
from services.gateway.routes.deps import Caller, Services, reading
from services.gateway.routes.params import IsoDatetime
from services.projections import support_metrics, support_queries
from services.projections.support_queries import Scope
from services.projections.support_views import Queue, RequesterTicket, SupportMetrics, TicketDetail, TicketSummary
from services.tickets.domain.calendar import BusinessCalendar
from services.tickets.domain.sla import load_sla_policy

router = APIRouter(tags=["tickets"])

EVERY_TICKET = frozenset({"supervisor", "admin"})
ID_MAX = 200
# A metrics period is read row by row (business hours are computed in Python): a year at most.
PERIOD_MAX = timedelta(days=366)
Line = Annotated[int | None, Query(ge=1, le=3)]
SegmentQuery = Annotated[Literal["customers", "suppliers"] | None, Query()]
StatusQuery = Annotated[Literal["open", "pending", "resolved", "closed", "reopened"] | None, Query()]
UserQuery = Annotated[str | None, Query(min_length=1, max_length=ID_MAX)]


def desk_scope(principal: Principal) -> Scope | None:
    """None: every ticket. NotAllowed for a caller who is not on the desk."""
    if principal.roles & EVERY_TICKET:
        return None
    if "agent" in principal.roles:
        return Scope(principal.user_id, principal.lines, principal.segment)
    raise NotAllowed("only agents and supervisors read the support desk")


@router.get("/tickets", response_model=list[TicketSummary])
async def list_tickets(
    principal: Caller,
    gw: Services,
    line: Line = None,
    segment: SegmentQuery = None,
    status: StatusQuery = None,
    assignee: UserQuery = None,
    limit: Annotated[int, Query(ge=1, le=support_queries.MAX_LIMIT)] = 50,
) -> list[TicketSummary]:
    """Newest first, within what the caller may see."""
    scope = desk_scope(principal)
    async with reading(gw, principal) as conn:
        return await support_queries.tickets(
            conn, scope, line=line, segment=segment, status=status, assignee=assignee, limit=limit
        )


@router.get("/tickets/{ticket_id}", response_model=TicketDetail | RequesterTicket)
async def get_ticket(ticket_id: str, principal: Caller, gw: Services) -> TicketDetail | RequesterTicket:
    """The desk gets the full history (notes included); the requester, status and public replies."""
    async with reading(gw, principal) as conn:
        row = await support_queries.ticket_row(conn, ticket_id) if len(ticket_id) <= ID_MAX else None
        if row is None:
            raise NotFound("ticket", ticket_id)
        try:
            scope = desk_scope(principal)
        except NotAllowed:
            scope, on_desk = None, False
        else:
            on_desk = scope is None or scope.covers(row)
        if on_desk:
            return await support_queries.detail(conn, row)
        if row.requester_id == principal.user_id:
            return await support_queries.requester_view(conn, row)
    raise NotFound("ticket", ticket_id)


@router.get("/support/queues", response_model=list[Queue])
async def queues(principal: Caller, gw: Services) -> list[Queue]:
    """Per line and segment: the open tickets in SLA order with due and waiting times."""
    scope = desk_scope(principal)
    async with reading(gw, principal) as conn:
        return await support_queries.queues(conn, scope, datetime.now(UTC))


@router.get("/support/metrics", response_model=SupportMetrics)
async def metrics(
    request: Request,
    principal: Caller,
    gw: Services,
    period_from: Annotated[IsoDatetime, Query(alias="from", description="inclusive, ISO 8601 with a time zone")],
    period_to: Annotated[IsoDatetime, Query(alias="to", description="exclusive, ISO 8601 with a time zone")],
    line: Line = None,
    segment: SegmentQuery = None,
    agent: UserQuery = None,
) -> SupportMetrics:
    """Supervisors and admins: any figures; an agent: their own (`agent` = themselves)."""
    if not principal.roles & EVERY_TICKET and not ("agent" in principal.roles and agent == principal.user_id):
        raise NotAllowed("supervisors read the desk's metrics; an agent reads their own (agent=<your id>)")
    for name, value in (("from", period_from), ("to", period_to)):
        if value.tzinfo is None:
            raise Invalid(name, "give a time zone (e.g. 2026-03-02T00:00:00Z)")
    if period_to <= period_from:
        raise Invalid("to", "must be after from")
    if period_to - period_from > PERIOD_MAX:
        raise Invalid("to", f"a period is at most {PERIOD_MAX.days} days")
    period = support_metrics.Period(period_from.astimezone(UTC), period_to.astimezone(UTC), line, segment, agent)
    window = gw.settings.support_reopen_window_seconds
    async with reading(gw, principal) as conn:
        return await support_metrics.metrics(conn, period, _calendar(request, gw), window, datetime.now(UTC))


def _calendar(request: Request, gw: Services) -> BusinessCalendar:
    """The SLA policy's calendar, loaded once per app (the tickets service validates the file at start)."""
    calendar: BusinessCalendar | None = getattr(request.app.state, "support_calendar", None)
    if calendar is None:
        calendar = request.app.state.support_calendar = load_sla_policy(gw.settings).calendar
    return calendar
