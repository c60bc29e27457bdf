"""The conversation aggregate's state, folded from its stream's events (pure, no I/O).

`apply` changes the state in place: a busy group has thousands of messages, and copying the state
for every event would make folding a stream quadratic. The executor decides a batch of commands by
applying their events as it goes (each command sees the ones before it); if the append then fails,
`Undo` puts back exactly what those events changed. Values in the maps are immutable, so the undo
log holds plain references.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from shared.events.base import Event
from shared.events.conversation import (
    ConversationDetailsChanged,
    ConversationStarted,
    Delivered,
    MemberAdded,
    MemberRemoved,
    MessageEdited,
    MessageRetracted,
    MessageSent,
    Read,
)


@dataclass(frozen=True, slots=True)
class MessageInfo:
    seq: int
    sender_id: str
    retracted: bool = False


@dataclass(frozen=True, slots=True)
class SentInfo:
    """What a retried send answers: the original message, where it was stored and when."""

    message_id: str
    seq: int
    sent_at: datetime
    position: int


@dataclass(frozen=True, slots=True)
class Watermarks:
    delivered: int = 0
    read: int = 0


@dataclass(frozen=True, slots=True)
class ConversationView:
    """A snapshot of a conversation's details, safe to hand out (the state itself stays in the cache)."""

    conversation_id: str
    kind: str
    title: str
    description: str
    avatar_color: str | None
    members: tuple[str, ...]
    created_at: datetime
    created_by: str
    last_seq: int


@dataclass(slots=True)
class ConversationState:
    conversation_id: str
    kind: str = ""  # "" until ConversationStarted: the stream does not exist yet
    title: str = ""
    description: str = ""
    avatar_color: str | None = None
    created_at: datetime | None = None
    created_by: str = ""
    members: dict[str, None] = field(default_factory=dict)  # an ordered set: join order
    last_seq: int = 0
    messages: dict[str, MessageInfo] = field(default_factory=dict)
    sent: dict[tuple[str, str], SentInfo] = field(default_factory=dict)  # (sender, client_msg_id)
    watermarks: dict[str, Watermarks] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return self.created_at is not None

    def view(self) -> ConversationView:
        assert self.created_at is not None, "view() of a conversation that was never started"
        return ConversationView(
            conversation_id=self.conversation_id,
            kind=self.kind,
            title=self.title,
            description=self.description,
            avatar_color=self.avatar_color,
            members=tuple(self.members),
            created_at=self.created_at,
            created_by=self.created_by,
            last_seq=self.last_seq,
        )

    def watermarks_of(self, user_id: str) -> Watermarks:
        return self.watermarks.get(user_id) or Watermarks()


def apply(state: ConversationState, event: Event, *, at: datetime, position: int = 0) -> ConversationState:
    """Fold one stored event (`at` its occurred_at, `position` its store position) into `state`."""
    match event:
        case ConversationStarted():
            state.kind, state.title, state.description = event.kind, event.title, event.description
            state.avatar_color, state.created_at, state.created_by = event.avatar_color, at, event.created_by
            state.members = dict.fromkeys(event.members)
        case MemberAdded():
            state.members[event.user_id] = None
        case MemberRemoved():
            state.members.pop(event.user_id, None)
        case ConversationDetailsChanged():
            state.title = state.title if event.title is None else event.title
            state.description = state.description if event.description is None else event.description
            state.avatar_color = event.avatar_color or state.avatar_color
        case MessageSent():
            _apply_sent(state, event, at, position)
        case MessageRetracted():
            if (info := state.messages.get(event.message_id)) is not None:
                state.messages[event.message_id] = replace(info, retracted=True)
        case Delivered():
            marks = state.watermarks_of(event.user_id)
            state.watermarks[event.user_id] = replace(marks, delivered=max(marks.delivered, event.up_to_seq))
        case Read():
            _advance_read(state, event.user_id, event.up_to_seq)
        case MessageEdited():
            pass  # the text lives in the read models; the write side needs nothing of it
    return state


def _apply_sent(state: ConversationState, event: MessageSent, at: datetime, position: int) -> None:
    state.last_seq = max(state.last_seq, event.seq)
    state.messages[event.message_id] = MessageInfo(event.seq, event.sender_id)
    state.sent[(event.sender_id, event.client_msg_id)] = SentInfo(event.message_id, event.seq, at, position)
    # The catalogue's rule: sending advances the sender's own read (and so delivered) watermark.
    _advance_read(state, event.sender_id, event.seq)


def _advance_read(state: ConversationState, user_id: str, up_to_seq: int) -> None:
    marks = state.watermarks_of(user_id)
    read = max(marks.read, up_to_seq)
    state.watermarks[user_id] = Watermarks(max(marks.delivered, read), read)  # read implies delivered


_MISSING = object()


class Undo:
    """What a batch of events changed in a state, to put back if the store refuses the batch."""

    def __init__(self, state: ConversationState) -> None:
        self._scalars = (
            state.kind,
            state.title,
            state.description,
            state.avatar_color,
            state.created_at,
            state.created_by,
            state.last_seq,
            state.members,  # ConversationStarted replaces the map itself
        )
        self._entries: list[tuple[dict[Any, Any], Any, Any]] = []

    def apply(self, state: ConversationState, event: Event, *, at: datetime) -> None:
        """Apply `event`, remembering the old values of the map entries it touches."""
        for mapping, key in _touched(state, event):
            self._entries.append((mapping, key, mapping.get(key, _MISSING)))
        apply(state, event, at=at)

    def restore(self, state: ConversationState) -> None:
        for mapping, key, old in reversed(self._entries):
            if old is _MISSING:
                mapping.pop(key, None)
            else:
                mapping[key] = old
        (
            state.kind,
            state.title,
            state.description,
            state.avatar_color,
            state.created_at,
            state.created_by,
            state.last_seq,
            state.members,
        ) = self._scalars
        self._entries.clear()


def _touched(state: ConversationState, event: Event) -> list[tuple[dict[Any, Any], Any]]:
    match event:
        case MemberAdded() | MemberRemoved():
            return [(state.members, event.user_id)]
        case MessageSent():
            key = (event.sender_id, event.client_msg_id)
            return [(state.messages, event.message_id), (state.sent, key), (state.watermarks, event.sender_id)]
        case MessageRetracted():
            return [(state.messages, event.message_id)]
        case Delivered() | Read():
            return [(state.watermarks, event.user_id)]
    return []  # the rest changes scalars only


def stored_at(state: ConversationState, event: Event, position: int) -> None:
    """Record where an event decided in a batch landed, once the store has said (a sent message's position)."""
    if isinstance(event, MessageSent):
        key = (event.sender_id, event.client_msg_id)
        state.sent[key] = replace(state.sent[key], position=position)
