"""The audit API (/v1/audit, docs/audit.md): auditors only; everyone else gets the same 404 as a path
that does not exist. Every call is itself recorded (AuditQueried on the `audit` stream).

Queries and exports read the audit read model; verification walks the event store's chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from prometheus_client import Counter
from starlette.exceptions import HTTPException

from services.audit import queries
from services.audit.export import MEDIA_TYPES, export
from services.audit.recording import Action, record_query
from services.audit.replay import replay, to_json
from services.gateway.auth import Principal
from services.gateway.errors import NotFound
from services.gateway.routes.audit_schemas import AuditEvents, AuditReplay, AuditVerify
from services.gateway.routes.deps import Caller, Services
from services.gateway.routes.params import IsoDatetime
from shared.store.port import EventStore
from shared.store.verify import verify_chain

router = APIRouter(prefix="/audit", tags=["audit"])
LIMIT_MAX = 1000
ID_MAX = 200
POSITION_MAX = 2**63 - 1  # positions are 64-bit integers in the store (a larger one was a 500)


async def auditor(principal: Caller) -> Principal:
    if "auditor" not in principal.roles:
        raise HTTPException(404)  # exactly what an unknown path answers: the audit API is not revealed
    return principal


Auditor = Annotated[Principal, Depends(auditor)]


class Recorder:
    """Records one audit call (AuditQueried) and counts it (`ledgerline_audit_queries_total{action}`)."""

    def __init__(self, request: Request) -> None:
        self._store: EventStore = request.app.state.store
        state = request.app.state
        if getattr(state, "audit_queries", None) is None:  # created once per app, on first use
            state.audit_queries = state.metrics.counter("audit_queries", "Audit API calls, by action", ["action"])
        self._counter: Counter = state.audit_queries

    async def __call__(self, auditor_id: str, action: Action, filters: dict[str, Any], count: int) -> None:
        await record_query(self._store, auditor_id, action, filters, count)
        self._counter.labels(action).inc()


Record = Annotated[Recorder, Depends(Recorder)]


def _utc(value: datetime | None) -> datetime | None:
    """A time without an offset is taken as UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def event_filter(
    conversation_id: Annotated[str | None, Query(min_length=1, max_length=ID_MAX)] = None,
    user_id: Annotated[str | None, Query(min_length=1, max_length=ID_MAX)] = None,
    type: Annotated[str | None, Query(min_length=1, max_length=100)] = None,  # CONTRACT.md's name
    from_: Annotated[IsoDatetime | None, Query(alias="from", description="recorded at or after (inclusive)")] = None,
    to: Annotated[IsoDatetime | None, Query(description="recorded before (exclusive)")] = None,
) -> queries.EventFilter:
    return queries.EventFilter(conversation_id, user_id, type, _utc(from_), _utc(to))


Filter = Annotated[queries.EventFilter, Depends(event_filter)]


@router.get("/events", response_model=AuditEvents)
async def audit_events(
    principal: Auditor,
    gw: Services,
    record: Record,
    f: Filter,
    after_position: Annotated[int, Query(ge=0, le=POSITION_MAX, description="exclusive")] = 0,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = 100,
) -> dict[str, Any]:
    """Events matching every given filter, in position order; page on with `next_after_position`."""
    async with gw.engine.connect() as conn:
        records = [r async for page in queries.pages(conn, f, after_position, limit) for r in page]
    filters = {**f.as_filters(), "after_position": after_position, "limit": limit}
    await record(principal.user_id, "query", filters, len(records))
    events = [r.to_json() for r in records]
    next_after = events[-1]["position"] if len(events) == limit else None
    return {"events": events, "next_after_position": next_after}


@router.get("/conversations/{conversation_id}/replay", response_model=AuditReplay)
async def audit_replay(
    conversation_id: str,
    principal: Auditor,
    gw: Services,
    record: Record,
    as_of: Annotated[IsoDatetime | None, Query(description="the moment (default: now)")] = None,
) -> dict[str, Any]:
    """The conversation as it stood at `as_of`: members, messages as they read then, receipts."""
    moment = _utc(as_of) or datetime.now(UTC)
    async with gw.engine.connect() as conn:
        rows = await queries.conversation_rows(conn, conversation_id, moment)
    state = replay(conversation_id, rows, moment)
    filters = {"conversation_id": conversation_id[:ID_MAX], "as_of": moment.isoformat()}
    await record(principal.user_id, "replay", filters, len(state.messages))
    if not state.exists:
        raise NotFound("conversation", conversation_id)
    return to_json(state)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {MEDIA_TYPES["jsonl"]: {}, MEDIA_TYPES["csv"]: {}}}},
)
async def audit_export(
    principal: Auditor,
    gw: Services,
    record: Record,
    f: Filter,
    format: Annotated[Literal["jsonl", "csv"], Query()] = "jsonl",  # CONTRACT.md's name
) -> StreamingResponse:
    """Every matching event, streamed (JSON Lines, or CSV with a fixed header); recorded once it ends."""

    async def body() -> AsyncIterator[bytes]:
        count = 0

        def counted(n: int) -> None:
            nonlocal count
            count = n

        try:
            async with gw.engine.connect() as conn:
                async for chunk in export(conn, f, format, progress=counted):
                    yield chunk
        finally:  # a client that went away early is recorded with what it was sent
            await record(principal.user_id, "export", {**f.as_filters(), "format": format}, count)

    headers = {"Content-Disposition": f'attachment; filename="audit-export.{format}"'}
    return StreamingResponse(body(), media_type=MEDIA_TYPES[format], headers=headers)


@router.get("/verify", response_model=AuditVerify)
async def audit_verify(request: Request, principal: Auditor, gw: Services, record: Record) -> dict[str, Any]:
    """Walk the hash chain: `ok`, the head, or the first bad position and what is wrong there."""
    result = await verify_chain(gw.engine)
    request.app.state.audit_chain.record(result)
    await record(principal.user_id, "verify", {}, result.checked)
    return {
        "ok": result.ok,
        "checked": result.checked,
        "head_position": result.head_position,
        "head_hash": result.head_hash,
        "bad_position": result.bad_position,
        "problem": result.problem,
    }
