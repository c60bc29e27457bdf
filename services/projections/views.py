"""What the read-model queries answer: frozen dataclasses named and shaped like CONTRACT.md's HTTP
answers (`dataclasses.asdict` gives the JSON body; datetimes are UTC-aware)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Status = Literal["sent", "delivered", "read"]


@dataclass(frozen=True, slots=True)
class LastMessage:
    message_id: str
    seq: int
    sender_id: str
    text: str
    """The preview: the first 140 characters; empty when retracted."""
    sent_at: datetime
    retracted: bool


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """One entry of `GET /v1/conversations`."""

    conversation_id: str
    kind: str
    title: str
    last_message: LastMessage | None
    last_seq: int
    unread_count: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    name: str | None
    """From the directory; None when the user was never seen by the gateway."""
    joined_at: datetime
    delivered_seq: int
    read_seq: int


@dataclass(frozen=True, slots=True)
class ConversationDetail:
    """`GET /v1/conversations/{id}`: the contract's fields plus last_seq, unread_count, the caller's
    own watermarks and the creator."""

    conversation_id: str
    kind: str
    title: str
    description: str
    avatar_color: str | None
    members: list[Member]
    created_at: datetime
    created_by: str
    updated_at: datetime
    last_seq: int
    unread_count: int
    delivered_seq: int
    read_seq: int


@dataclass(frozen=True, slots=True)
class MessageView:
    """A message of the timeline. `status`, `delivered_count` and `read_count` are set for the
    caller's own messages only (counts in groups only: over the other active members)."""

    conversation_id: str
    message_id: str
    seq: int
    sender_id: str
    text: str
    attachments: list[dict[str, Any]]
    links: list[dict[str, Any]]
    reply_to: str | None
    sent_at: datetime
    edited_at: datetime | None
    retracted: bool
    status: Status | None = None
    delivered_count: int | None = None
    read_count: int | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A search result; `highlight` is an HTML-escaped fragment with matches in <mark>…</mark>."""

    conversation_id: str
    message_id: str
    seq: int
    sender_id: str
    text: str
    sent_at: datetime
    edited_at: datetime | None
    highlight: str


@dataclass(frozen=True, slots=True)
class Unread:
    """`GET /v1/unread`: conversations with nothing unread are left out of `conversations`."""

    total: int
    conversations: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UserEntry:
    user_id: str
    name: str
    roles: list[str]
    segment: str | None
    lines: list[int]
