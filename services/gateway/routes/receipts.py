"""Receipt watermarks: delivered and read up to a seq (monotonic; read implies delivered)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from services.gateway.routes.deps import Caller, Services, wrote
from services.gateway.routes.schemas import Watermark

router = APIRouter(tags=["receipts"])


@router.post("/conversations/{conversation_id}/delivered", status_code=204)
async def mark_delivered(conversation_id: str, body: Watermark, principal: Caller, gw: Services) -> Response:
    """204; `up_to_seq` beyond the last message is 422; at or below the current watermark changes nothing."""
    result = await gw.conversations.mark_delivered(principal, conversation_id, body.up_to_seq)
    wrote(gw, principal, conversation_id, result.position)
    return Response(status_code=204)


@router.post("/conversations/{conversation_id}/read", status_code=204)
async def mark_read(conversation_id: str, body: Watermark, principal: Caller, gw: Services) -> Response:
    result = await gw.conversations.mark_read(principal, conversation_id, body.up_to_seq)
    wrote(gw, principal, conversation_id, result.position)
    return Response(status_code=204)
