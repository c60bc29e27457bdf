"""Messages: send (idempotent by client_msg_id), list a page, edit and retract one's own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.gateway.auth import Principal
from services.gateway.commands.inputs import AttachmentInput, LinkInput
from services.gateway.context import Gateway
from services.gateway.errors import Invalid, NotFound
from services.gateway.files import catalogue
from services.gateway.routes import lean
from services.gateway.routes.deps import Caller, Services, caller, reading, wrote
from services.gateway.routes.schemas import MessageEdit, NewMessage, Sent
from services.projections import queries
from services.projections.timeline import MAX_LIMIT
from services.projections.views import MessageView

# Past the column's integer PostgreSQL refuses the comparison (500): found by tests/fuzz/test_fuzz_openapi.py.
SEQ_MAX = 2**31 - 1  # the read models keep seq as a 32-bit integer: far past any real conversation

router = APIRouter(tags=["messages"])


SEND_PATH = "/conversations/{conversation_id}/messages"


@router.post(SEND_PATH, status_code=201, response_model=Sent)
async def send_message(conversation_id: str, body: NewMessage, principal: Caller, gw: Services) -> Sent:
    """201 with the message; a retry with the same client_msg_id answers the original (also 201)."""
    # Declared for the OpenAPI document and as the reference: requests are served by
    # `send_message_lean` in front of it (routes/lean.py), which must answer the same.
    return await _send(gw, principal, conversation_id, body)


async def send_message_lean(request: Request) -> Response:
    """`send_message` without FastAPI's request machinery, step for step as lean.py describes."""
    body = await lean.read_json(request)
    principal = await caller(request, request.headers.get("authorization"))
    message = lean.validate(NewMessage, body)
    sent = await _send(request.app.state.gateway, principal, request.path_params["conversation_id"], message)
    return lean.json_response(sent, 201)


async def _send(gw: Gateway, principal: Principal, conversation_id: str, body: NewMessage) -> Sent:
    attachments = await _attachments(gw, principal, body.attachments) if body.attachments else []
    sent = await gw.conversations.send_message(
        principal,
        conversation_id,
        body.client_msg_id,
        body.text,
        attachments,
        [LinkInput(link.kind, link.id, link.title) for link in body.links],
        body.reply_to,
    )
    wrote(gw, principal, conversation_id, sent.position)
    return Sent(message_id=sent.message_id, seq=sent.seq, sent_at=sent.sent_at)


@router.get("/conversations/{conversation_id}/messages", response_model=list[MessageView])
async def list_messages(
    conversation_id: str,
    principal: Caller,
    gw: Services,
    request: Request,
    after_seq: Annotated[int | None, Query(ge=0, le=SEQ_MAX)] = None,
    before_seq: Annotated[int | None, Query(ge=1, le=SEQ_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> list[MessageView]:
    """Oldest first; bounds exclusive; without after_seq, the newest `limit` messages. Returning
    another member's messages marks them delivered to the caller (in the background, coalesced)."""
    async with reading(gw, principal) as conn:
        page = await queries.messages(conn, principal.user_id, conversation_id, after_seq, before_seq, limit)
    if page is None:
        raise NotFound("conversation", conversation_id)
    request.app.state.realtime.fetch_delivery.fetched(principal, conversation_id, page)  # docs/realtime.md
    return page


@router.patch("/conversations/{conversation_id}/messages/{message_id}", response_model=MessageView)
async def edit_message(
    conversation_id: str, message_id: str, body: MessageEdit, principal: Caller, gw: Services
) -> MessageView:
    """The edited message as the timeline shows it."""
    changed = await gw.conversations.edit_message(principal, conversation_id, message_id, body.text)
    wrote(gw, principal, conversation_id, changed.position)
    async with reading(gw, principal) as conn:
        page = await queries.messages(conn, principal.user_id, conversation_id, changed.seq - 1, None, 1)
    if not page:
        raise NotFound("message", message_id)
    return page[0]


@router.delete("/conversations/{conversation_id}/messages/{message_id}", status_code=204)
async def retract_message(conversation_id: str, message_id: str, principal: Caller, gw: Services) -> Response:
    changed = await gw.conversations.retract_message(principal, conversation_id, message_id)
    wrote(gw, principal, conversation_id, changed.position)
    return Response(status_code=204)


async def _attachments(gw: Gateway, principal: Principal, file_ids: list[str]) -> list[AttachmentInput]:
    """The files' metadata; each must be the caller's upload or one they can see in a message."""
    async with reading(gw, principal) as conn:
        found = await catalogue.get_many(conn, list(dict.fromkeys(file_ids)))
        out = []
        for i, file_id in enumerate(file_ids):
            info = found.get(file_id)
            usable = info is not None and (
                info.uploader_id == principal.user_id or await queries.file_visible(conn, principal.user_id, file_id)
            )
            if info is None or not usable:
                raise Invalid(f"attachments[{i}]", f"no file {file_id!r} that you uploaded or can see")
            out.append(AttachmentInput(info.file_id, info.name, info.mime, info.size, info.sha256))
    return out
