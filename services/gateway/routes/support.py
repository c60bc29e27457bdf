"""The support desk's entry points for users and agents: the conversation with "Technical support",
and an agent's availability (docs/support.md)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.gateway.routes.conversations import detail
from services.gateway.routes.deps import Caller, Services, wrote
from services.gateway.routes.ticket_schemas import Availability, AvailabilityOut
from services.projections.views import ConversationDetail

router = APIRouter(tags=["support"])


@router.post(
    "/support/conversation",
    status_code=201,
    response_model=ConversationDetail,
    responses={200: {"model": ConversationDetail, "description": "the caller's support conversation existed"}},
)
async def support_conversation(principal: Caller, gw: Services, response: Response) -> ConversationDetail:
    """201 with the caller's conversation with the "Technical support" contact; 200 when it existed.
    A message there opens a ticket (or continues the open one)."""
    started = await gw.tickets.support_conversation(principal)
    conversation_id = started.conversation.conversation_id
    wrote(gw, principal, conversation_id, started.position)
    if not started.created:
        response.status_code = 200
    return await detail(gw, principal, conversation_id, started.conversation)


@router.post("/support/availability", response_model=AvailabilityOut)
async def set_availability(body: Availability, principal: Caller, gw: Services) -> AvailabilityOut:
    """Agents: take tickets (`true`) or not (`false`), whatever their sessions; 403 for others."""
    await gw.tickets.set_availability(principal, body.available)
    return AvailabilityOut(agent_id=principal.user_id, available=body.available)
