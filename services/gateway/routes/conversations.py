"""Conversations: start (direct, unique per pair; group), list, read one, change details."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.gateway.auth import Principal
from services.gateway.commands.state import ConversationView
from services.gateway.context import Gateway
from services.gateway.errors import NotFound
from services.gateway.routes.deps import Caller, Services, reading, wrote
from services.gateway.routes.schemas import ConversationChange, NewConversation
from services.projections import queries
from services.projections.views import ConversationDetail, ConversationSummary, Member

router = APIRouter(tags=["conversations"])


@router.post(
    "/conversations",
    status_code=201,
    response_model=ConversationDetail,
    responses={200: {"model": ConversationDetail, "description": "the direct conversation existed: the same one"}},
)
async def start_conversation(
    body: NewConversation, principal: Caller, gw: Services, response: Response
) -> ConversationDetail:
    """201 with the new conversation; 200 with the existing one for a direct pair asked again."""
    started = await gw.conversations.start_conversation(
        principal, body.kind, body.members, body.title, body.description, body.avatar_color
    )
    conversation_id = started.conversation.conversation_id
    wrote(gw, principal, conversation_id, started.position)
    if not started.created:
        response.status_code = 200
    return await detail(gw, principal, conversation_id, started.conversation)


@router.get("/conversations", response_model=list[ConversationSummary])
async def list_conversations(principal: Caller, gw: Services) -> list[ConversationSummary]:
    async with reading(gw, principal) as conn:
        return await queries.conversations(conn, principal.user_id)


@router.get("/conversations/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(conversation_id: str, principal: Caller, gw: Services) -> ConversationDetail:
    return await detail(gw, principal, conversation_id)


@router.patch("/conversations/{conversation_id}", response_model=ConversationDetail)
async def change_conversation(
    conversation_id: str, body: ConversationChange, principal: Caller, gw: Services
) -> ConversationDetail:
    changed = await gw.conversations.change_details(
        principal, conversation_id, body.title, body.description, body.avatar_color
    )
    wrote(gw, principal, conversation_id, changed.position)
    return await detail(gw, principal, conversation_id, changed.conversation)


async def detail(
    gw: Gateway, principal: Principal, conversation_id: str, written: ConversationView | None = None
) -> ConversationDetail:
    """The conversation from the read model once the caller's writes are in it. When the wait timed
    out right after a write, the write side's snapshot answers instead (same shape, without names)."""
    async with reading(gw, principal) as conn:
        found = await queries.conversation(conn, principal.user_id, conversation_id)
    if found is not None:
        return found
    if written is None:
        raise NotFound("conversation", conversation_id)
    return _from_write_side(written, principal.user_id)


def _from_write_side(view: ConversationView, user_id: str) -> ConversationDetail:
    members = [Member(m, None, view.created_at, 0, 0) for m in view.members]
    return ConversationDetail(
        view.conversation_id,
        view.kind,
        view.title,
        view.description,
        view.avatar_color,
        members,
        view.created_at,
        view.created_by,
        view.created_at,
        view.last_seq,
        0,
        0,
        0,
    )
