"""Group membership: add someone, remove someone (creator, admins, supervisors) or leave."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.gateway.routes.deps import Caller, Services, wrote
from services.gateway.routes.schemas import MemberOut, NewMember

router = APIRouter(tags=["members"])


@router.post(
    "/conversations/{conversation_id}/members",
    status_code=201,
    response_model=MemberOut,
    responses={200: {"model": MemberOut, "description": "the user was a member already"}},  # found by tests/fuzz
)
async def add_member(
    conversation_id: str, body: NewMember, principal: Caller, gw: Services, response: Response
) -> MemberOut:
    """201 when added; 200 when the user was a member already."""
    changed = await gw.conversations.add_member(principal, conversation_id, body.user_id)
    wrote(gw, principal, conversation_id, changed.position)
    if not changed.changed:
        response.status_code = 200
    return MemberOut(conversation_id=conversation_id, user_id=body.user_id)


@router.delete("/conversations/{conversation_id}/members/{user_id}", status_code=204)
async def remove_member(conversation_id: str, user_id: str, principal: Caller, gw: Services) -> Response:
    changed = await gw.conversations.remove_member(principal, conversation_id, user_id)
    wrote(gw, principal, conversation_id, changed.position)
    return Response(status_code=204)
