"""Which frames an event becomes, and for whom: pure functions over the delivery view (no I/O).

`Members` is the view of one conversation: user id -> Marks (active members only are recipients).
The sender's own sessions get its `message` frames too, so that a user's desktop and web stay in
step. A `receipt` goes to every active member (the user's own other sessions clear their unread
badge with it) when a watermark moved; a watermark that does not move sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.delivery.realtime import Frame
from shared.events.envelope import RecordedEvent


@dataclass(slots=True)
class Marks:
    active: bool
    delivered_seq: int = 0
    read_seq: int = 0


Members = dict[str, Marks]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One frame for `recipients`; `offline_candidates` are the recipients to notify when offline."""

    frame: Frame
    recipients: tuple[str, ...]
    offline_candidates: tuple[str, ...] = ()


def active(members: Members) -> tuple[str, ...]:
    return tuple(sorted(u for u, m in members.items() if m.active))


def apply(event: RecordedEvent, members: Members) -> list[Outgoing]:
    """Change `members` by `event` (in place) and answer the frames it gives."""
    p = event.payload
    match event.type:
        case "ConversationStarted":
            for user in p["members"]:
                members[user] = Marks(True)
            return [_conversation("started", p, active(members), members=list(p["members"]))]
        case "MemberAdded":
            members[p["user_id"]] = Marks(True, *_marks_of(members.get(p["user_id"])))
            return [_conversation("member_added", p, active(members), user_id=p["user_id"])]
        case "MemberRemoved":
            before = active(members)
            if p["user_id"] in members:
                members[p["user_id"]].active = False
            return [_conversation("member_removed", p, before, user_id=p["user_id"], reason=p["reason"])]
        case "ConversationDetailsChanged":
            details = {k: p[k] for k in ("title", "description", "avatar_color") if p.get(k) is not None}
            return [_conversation("details_changed", p, active(members), **details)]
        case "MessageSent":
            return _message_sent(event, members)
        case "MessageEdited":
            fields = {"message_id": p["message_id"], "seq": p["seq"], "text": p["text"]}
            return [_conversation("message_edited", p, active(members), edited_at=event.occurred_at, **fields)]
        case "MessageRetracted":
            fields = {"message_id": p["message_id"], "seq": p["seq"]}
            return [_conversation("message_retracted", p, active(members), **fields)]
        case "Delivered" | "Read":
            return _receipt(event.type, p, members)
    return []


def _marks_of(marks: Marks | None) -> tuple[int, int]:
    return (marks.delivered_seq, marks.read_seq) if marks else (0, 0)


def _conversation(change: str, p: dict[str, Any], to: tuple[str, ...], **fields: Any) -> Outgoing:
    frame: Frame = {"type": "conversation", "event": change, "conversation_id": p["conversation_id"], **fields}
    return Outgoing(frame, to)


def _message_sent(event: RecordedEvent, members: Members) -> list[Outgoing]:
    p = event.payload
    sender = members.get(p["sender_id"])
    if sender is not None:  # sending reads (and so delivers) everything up to the message
        sender.read_seq = max(sender.read_seq, p["seq"])
        sender.delivered_seq = max(sender.delivered_seq, p["seq"])
    to = active(members)
    return [Outgoing(message_frame(p, event.occurred_at), to, tuple(u for u in to if u != p["sender_id"]))]


def message_frame(p: dict[str, Any], sent_at: datetime) -> Frame:
    """The `message` frame of a MessageSent payload. The gateway builds the same frame for the sockets
    it holds right after its commit (services/gateway/ws/handover.py): one definition, one wire form."""
    frame: Frame = {
        "type": "message",
        "conversation_id": p["conversation_id"],
        "seq": p["seq"],
        "message_id": p["message_id"],
        "sender_id": p["sender_id"],
        "text": p.get("text", ""),
        "attachments": p.get("attachments", []),
        "links": p.get("links", []),
        "sent_at": sent_at.isoformat(),
    }
    if p.get("reply_to") is not None:
        frame["reply_to"] = p["reply_to"]
    return frame


def _receipt(kind: str, p: dict[str, Any], members: Members) -> list[Outgoing]:
    marks = members.get(p["user_id"])
    if marks is None:
        return []
    up_to = int(p["up_to_seq"])
    before = (marks.delivered_seq, marks.read_seq)
    marks.delivered_seq = max(marks.delivered_seq, up_to)  # read implies delivered
    if kind == "Read":
        marks.read_seq = max(marks.read_seq, up_to)
    if (marks.delivered_seq, marks.read_seq) == before:
        return []
    frame: Frame = {
        "type": "receipt",
        "conversation_id": p["conversation_id"],
        "user_id": p["user_id"],
        "delivered_seq": marks.delivered_seq,
        "read_seq": marks.read_seq,
    }
    return [Outgoing(frame, active(members))]
