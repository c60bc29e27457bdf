"""What the write side's commands answer. `position` is the store position of the last event the
command appended, for read-your-writes; 0 when it appended nothing (a retry, an unchanged value)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.gateway.commands.state import ConversationView


@dataclass(frozen=True, slots=True)
class StartedConversation:
    conversation: ConversationView
    created: bool  # False: the direct conversation of this pair existed already
    position: int


@dataclass(frozen=True, slots=True)
class SentMessage:
    """For a retried send (`duplicate`), the original's id, seq, time and position."""

    message_id: str
    seq: int
    sent_at: datetime
    position: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    conversation_id: str
    user_id: str
    changed: bool  # False: already a member (add)
    position: int


@dataclass(frozen=True, slots=True)
class DetailsChanged:
    conversation: ConversationView
    changed: bool  # False: every given detail was the current one
    position: int


@dataclass(frozen=True, slots=True)
class MessageChanged:
    """An edit or a retraction of the message `message_id` (number `seq`)."""

    conversation_id: str
    message_id: str
    seq: int
    changed: bool  # False: a retraction of a message already retracted
    position: int


@dataclass(frozen=True, slots=True)
class WatermarksSet:
    """The caller's watermarks after the command (read implies delivered)."""

    conversation_id: str
    user_id: str
    delivered_seq: int
    read_seq: int
    changed: bool  # False: not above the current watermark
    position: int
