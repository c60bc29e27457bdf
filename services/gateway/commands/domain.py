"""The conversation's decisions (pure, no I/O): given the state and a command, the events to append.

Each decision returns a list of events (empty: nothing to do, e.g. a retried send or a watermark that
is not higher) or raises a domain error. Inputs that do not depend on the state were checked before
(commands/inputs.py); here is what only the state can tell. A caller who is not a member learns
nothing: every membership failure is `NotFound("conversation", id)`, exactly as for an unknown id.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from services.gateway.commands.state import (
    ConversationState,
    ConversationView,
    MessageInfo,
    SentInfo,
    Watermarks,
    apply,
)
from services.gateway.errors import Conflict, Invalid, NotAllowed, NotFound
from shared.events.base import Event
from shared.events.conversation import (
    Attachment,
    ConversationDetailsChanged,
    ConversationStarted,
    Delivered,
    MemberAdded,
    MemberRemoved,
    MessageEdited,
    MessageRetracted,
    MessageSent,
    ObjectLink,
    Read,
)
from shared.events.ids import deterministic_id, message_event_id, message_id

__all__ = [
    "ConversationState",
    "ConversationView",
    "MessageInfo",
    "Receipt",
    "SentInfo",
    "Watermarks",
    "add_member",
    "apply",
    "change_details",
    "edit_message",
    "event_id",
    "mark",
    "remove_member",
    "retract_message",
    "send_message",
    "start",
    "stream_id",
]

E = TypeVar("E", bound=Event)
Receipt = Literal["delivered", "read"]


def stream_id(conversation_id: str) -> str:
    return f"conversation-{conversation_id}"


def start(
    caller: str,
    kind: str,
    members: tuple[str, ...],
    title: str,
    description: str,
    avatar_color: str | None,
) -> ConversationStarted:
    """A new conversation. A direct one's id derives from its pair, so that it is unique per pair."""
    if kind == "direct":
        if title or description or avatar_color:
            raise Invalid("title", "a direct conversation has no title, description or avatar colour")
        conversation_id = str(deterministic_id("direct", *sorted(members)))
    elif kind == "group":
        conversation_id = str(uuid.uuid4())
    else:
        raise Invalid("kind", "must be direct or group")
    return _event(
        ConversationStarted,
        conversation_id=conversation_id,
        kind=kind,
        title=title,
        description=description,
        avatar_color=avatar_color,
        members=members,
        created_by=caller,
    )


def add_member(state: ConversationState, actor: str, user_id: str) -> list[Event]:
    _group(state, actor)
    if user_id in state.members:
        return []
    return [_event(MemberAdded, conversation_id=state.conversation_id, user_id=user_id, added_by=actor)]


def remove_member(state: ConversationState, actor: str, user_id: str, *, moderator: bool = False) -> list[Event]:
    """A member may leave; removing someone else is for the group's creator or a moderator (admin)."""
    _group(state, actor)
    if user_id not in state.members:
        raise NotFound("member", user_id)
    leaving = user_id == actor
    if not leaving and actor != state.created_by and not moderator:
        raise NotAllowed("only the group's creator removes other members")
    reason = "left" if leaving else "removed"
    return [
        _event(MemberRemoved, conversation_id=state.conversation_id, user_id=user_id, removed_by=actor, reason=reason)
    ]


def change_details(
    state: ConversationState, actor: str, title: str | None, description: str | None, avatar_color: str | None
) -> list[Event]:
    """Only what differs from the current details is written; nothing differing appends nothing."""
    _group(state, actor)
    if title is None and description is None and avatar_color is None:
        raise Invalid("title", "give at least one of title, description, avatar_color")
    changes: dict[str, Any] = {
        "title": None if title == state.title else title,
        "description": None if description == state.description else description,
        "avatar_color": None if avatar_color == state.avatar_color else avatar_color,
    }
    if all(v is None for v in changes.values()):
        return []
    return [_event(ConversationDetailsChanged, conversation_id=state.conversation_id, changed_by=actor, **changes)]


def send_message(
    state: ConversationState,
    sender: str,
    client_msg_id: str,
    text: str,
    attachments: tuple[Attachment, ...],
    links: tuple[ObjectLink, ...],
    reply_to: str | None,
) -> list[Event]:
    """The next message (`seq = last_seq + 1`), or nothing when this client id was sent already."""
    _member(state, sender)
    if (sender, client_msg_id) in state.sent:
        return []  # a retry: the caller answers with state.sent's original
    if not text.strip() and not attachments and not links:
        raise Invalid("text", "a message needs a text, an attachment or a link")
    if reply_to is not None and reply_to not in state.messages:
        raise Invalid("reply_to", "is not a message of this conversation")
    return [
        _event(
            MessageSent,
            conversation_id=state.conversation_id,
            message_id=str(message_id(state.conversation_id, sender, client_msg_id)),
            seq=state.last_seq + 1,
            sender_id=sender,
            client_msg_id=client_msg_id,
            text=text,
            attachments=attachments,
            links=links,
            reply_to=reply_to,
        )
    ]


def edit_message(state: ConversationState, actor: str, message_id: str, text: str) -> list[Event]:
    info = _own_message(state, actor, message_id, "edit")
    if info.retracted:
        raise Conflict(f"message {message_id!r} was retracted and cannot be edited")
    if not text.strip():
        raise Invalid("text", "an edit needs a text; retract the message to withdraw it")
    return [
        _event(
            MessageEdited,
            conversation_id=state.conversation_id,
            message_id=message_id,
            seq=info.seq,
            text=text,
            edited_by=actor,
        )
    ]


def retract_message(state: ConversationState, actor: str, message_id: str) -> list[Event]:
    info = _own_message(state, actor, message_id, "retract")
    if info.retracted:
        return []
    return [
        _event(
            MessageRetracted,
            conversation_id=state.conversation_id,
            message_id=message_id,
            seq=info.seq,
            retracted_by=actor,
        )
    ]


def mark(state: ConversationState, user: str, receipt: Receipt, up_to_seq: int) -> list[Event]:
    """A Delivered/Read watermark; one not above the current one appends nothing (monotonic)."""
    _member(state, user)
    if up_to_seq > state.last_seq:
        raise Invalid("up_to_seq", f"is beyond the last message ({state.last_seq})")
    marks = state.watermarks_of(user)
    current = marks.delivered if receipt == "delivered" else marks.read
    if up_to_seq <= current:
        return []
    kind = Delivered if receipt == "delivered" else Read
    return [_event(kind, conversation_id=state.conversation_id, user_id=user, up_to_seq=up_to_seq)]


def event_id(event: Event) -> uuid.UUID:
    """The event's id: derived from the fact where a retry or a second process must not duplicate it."""
    match event:
        case MessageSent():
            return message_event_id(event.conversation_id, event.sender_id, event.client_msg_id)
        case Delivered() | Read():
            return deterministic_id(event.type, event.conversation_id, event.user_id, str(event.up_to_seq))
        case MessageRetracted():
            return deterministic_id(event.type, event.conversation_id, event.message_id)
        case ConversationStarted() if event.kind == "direct":
            return deterministic_id(event.type, event.conversation_id)
    return uuid.uuid4()


def _member(state: ConversationState, user: str) -> None:
    if not state.exists or user not in state.members:
        raise NotFound("conversation", state.conversation_id)


def _group(state: ConversationState, actor: str) -> None:
    _member(state, actor)
    if state.kind != "group":
        raise Invalid("conversation_id", f"a {state.kind} conversation has fixed members and details")


def _own_message(state: ConversationState, actor: str, message_id: str, verb: str) -> MessageInfo:
    _member(state, actor)
    info = state.messages.get(message_id)
    if info is None:
        raise NotFound("message", message_id)
    if info.sender_id != actor:
        raise NotAllowed(f"only the author may {verb} a message")
    return info


def _event(model: type[E], /, **fields: Any) -> E:
    """The catalogue checks the event once more; a failure here is still the caller's input."""
    try:
        return model(**fields)
    except ValidationError as e:
        first = e.errors()[0]
        raise Invalid(".".join(str(p) for p in first["loc"]) or model.__name__, first["msg"]) from e
