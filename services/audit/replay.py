"""Conversation replay: fold a conversation's events up to a moment into what it was then.

The ONE implementation of "the conversation as it stood at T", pure (no I/O). Its callers hand it
the events in position order:
- `ledgerline audit replay` reads them from the event store (SqlEventStore.read_stream), so it does
  not depend on any read model being current;
- `GET /v1/audit/conversations/{id}/replay` reads them from the audit read model (rm_audit_events).
tests/integration/test_audit_replay.py checks that both give the same answer.

The moment is compared with `recorded_at` (the store's time, covered by the hash chain, increasing
with position): an event is part of the state at T when it was recorded at or before T.
Rules, as the chat read models apply them (docs/read-models.md):
- an edit replaces the text; a retraction withdraws the message (its text is no longer shown: the
  original stays in the events); an edit or retraction after T is not applied;
- Delivered and Read are monotonic watermarks per user; read implies delivered; sending a message
  means the sender has read everything up to it. A message's `delivered_to` / `read_by` list the
  users other than its sender whose watermarks had reached its seq by T.
- membership is a list of intervals per user (joined, left), so a member who left and came back
  shows both stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.store.hashing import format_time


class Record(Protocol):
    """What replay needs of an event: a RecordedEvent, or a row of the audit read model."""

    @property
    def position(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def recorded_at(self) -> datetime: ...
    @property
    def payload(self) -> dict[str, Any]: ...


@dataclass
class Message:
    seq: int
    message_id: str
    sender_id: str
    text: str | None
    attachments: list[Any]
    links: list[Any]
    reply_to: str | None
    sent_at: datetime
    edited_at: datetime | None = None
    retracted_at: datetime | None = None


@dataclass
class Stay:
    """One interval of membership; `left_at` None while still a member."""

    user_id: str
    joined_at: datetime
    left_at: datetime | None = None


@dataclass
class Conversation:
    conversation_id: str
    as_of: datetime | None
    exists: bool = False
    position: int = 0
    """The last event folded in (0: none)."""
    kind: str | None = None
    title: str = ""
    description: str = ""
    created_at: datetime | None = None
    stays: list[Stay] = field(default_factory=list)
    messages: dict[int, Message] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    read: dict[str, int] = field(default_factory=dict)
    _open: dict[str, Stay] = field(default_factory=dict)

    def join(self, user: str, at: datetime) -> None:
        if user not in self._open:
            stay = Stay(user, at)
            self._open[user] = stay
            self.stays.append(stay)

    def leave(self, user: str, at: datetime) -> None:
        stay = self._open.pop(user, None)
        if stay is not None:
            stay.left_at = at

    def watermark(self, user: str, delivered: int, read: int) -> None:
        self.delivered[user] = max(self.delivered.get(user, 0), delivered, read)
        self.read[user] = max(self.read.get(user, 0), read)

    @property
    def members(self) -> list[str]:
        return sorted(self._open)


def replay(conversation_id: str, records: Iterable[Record], as_of: datetime | None = None) -> Conversation:
    """The conversation at `as_of` (None: now, everything given)."""
    state = Conversation(conversation_id, as_of)
    for r in records:
        if as_of is not None and r.recorded_at > as_of:
            continue  # not `break`: a record's order is its position; a clock step back must not hide later ones
        apply = _APPLY.get(r.type)
        if apply is None or r.payload.get("conversation_id") != conversation_id:
            continue
        apply(state, r.payload, r.recorded_at)
        state.position = r.position
    return state


def _started(s: Conversation, p: dict[str, Any], at: datetime) -> None:
    s.exists, s.kind, s.created_at = True, p["kind"], at
    s.title, s.description = p.get("title", ""), p.get("description", "")
    for user in p["members"]:
        s.join(user, at)


def _details(s: Conversation, p: dict[str, Any], _at: datetime) -> None:
    if p.get("title") is not None:
        s.title = p["title"]
    if p.get("description") is not None:
        s.description = p["description"]


def _sent(s: Conversation, p: dict[str, Any], at: datetime) -> None:
    seq = p["seq"]
    s.messages[seq] = Message(
        seq, p["message_id"], p["sender_id"], p.get("text", ""), p.get("attachments", []), p.get("links", []),
        p.get("reply_to"), at,
    )  # fmt: skip
    s.watermark(p["sender_id"], seq, seq)


def _edited(s: Conversation, p: dict[str, Any], at: datetime) -> None:
    message = s.messages.get(p["seq"])
    if message is not None and message.retracted_at is None:
        message.text, message.edited_at = p["text"], at


def _retracted(s: Conversation, p: dict[str, Any], at: datetime) -> None:
    message = s.messages.get(p["seq"])
    if message is not None and message.retracted_at is None:
        message.text, message.retracted_at = None, at


Apply = Callable[[Conversation, dict[str, Any], datetime], None]
_APPLY: dict[str, Apply] = {
    "ConversationStarted": _started,
    "ConversationDetailsChanged": _details,
    "MemberAdded": lambda s, p, at: s.join(p["user_id"], at),
    "MemberRemoved": lambda s, p, at: s.leave(p["user_id"], at),
    "MessageSent": _sent,
    "MessageEdited": _edited,
    "MessageRetracted": _retracted,
    "Delivered": lambda s, p, _at: s.watermark(p["user_id"], p["up_to_seq"], 0),
    "Read": lambda s, p, _at: s.watermark(p["user_id"], 0, p["up_to_seq"]),
}


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def to_json(state: Conversation) -> dict[str, Any]:
    """The replay as the API and the CLI print it."""
    receipts = sorted(state.delivered.items())
    reads = sorted(state.read.items())
    return {
        "conversation_id": state.conversation_id,
        "as_of": _time(state.as_of),
        "position": state.position,
        "kind": state.kind,
        "title": state.title,
        "description": state.description,
        "created_at": _time(state.created_at),
        "members": state.members,
        "membership": [
            {"user_id": s.user_id, "joined_at": _time(s.joined_at), "left_at": _time(s.left_at)} for s in state.stays
        ],
        "messages": [
            {
                "seq": m.seq,
                "message_id": m.message_id,
                "sender_id": m.sender_id,
                "text": m.text,
                "attachments": m.attachments,
                "links": m.links,
                "reply_to": m.reply_to,
                "sent_at": _time(m.sent_at),
                "edited_at": _time(m.edited_at),
                "retracted": m.retracted_at is not None,
                "retracted_at": _time(m.retracted_at),
                "delivered_to": [u for u, w in receipts if w >= m.seq and u != m.sender_id],
                "read_by": [u for u, w in reads if w >= m.seq and u != m.sender_id],
            }
            for m in sorted(state.messages.values(), key=lambda m: m.seq)
        ],
    }
