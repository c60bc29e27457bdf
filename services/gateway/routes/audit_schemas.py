"""Response shapes of the audit API (for the OpenAPI document; docs/audit.md describes them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AuditEvent(BaseModel):
    position: int
    recorded_at: str
    occurred_at: str
    actor: str
    stream_id: str
    type: str
    conversation_id: str | None
    summary: str
    hash: str
    payload: dict[str, Any]


class AuditEvents(BaseModel):
    events: list[AuditEvent]
    next_after_position: int | None
    """Pass as `after_position` for the next page; null when this page was the last."""


class Stay(BaseModel):
    user_id: str
    joined_at: str
    left_at: str | None


class ReplayedMessage(BaseModel):
    seq: int
    message_id: str
    sender_id: str
    text: str | None
    attachments: list[Any]
    links: list[Any]
    reply_to: str | None
    sent_at: str
    edited_at: str | None
    retracted: bool
    retracted_at: str | None
    delivered_to: list[str]
    read_by: list[str]


class AuditReplay(BaseModel):
    conversation_id: str
    as_of: str | None
    position: int
    kind: str | None
    title: str
    description: str
    created_at: str | None
    members: list[str]
    membership: list[Stay]
    messages: list[ReplayedMessage]


class AuditVerify(BaseModel):
    ok: bool
    checked: int
    head_position: int
    head_hash: str
    bad_position: int | None
    problem: str | None
