"""Conversation stream (`conversation-<uuid>`): membership, details, messages, receipts.

Personal data (see `Event.personal_fields`): titles and descriptions (a direct or support chat is
often titled with a person's name), message texts, attachment file names and object-link titles (a
contact or a call is titled with a person's name). User ids are not marked: they are the host's
pseudonymous keys, needed to check membership even after a person's data has been erased; the
person's name lives in the user stream.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from shared.events.base import Event, EventPart
from shared.events.fields import (
    ATTACHMENTS_MAX,
    LINKS_MAX,
    MEMBERS_MAX,
    AvatarColor,
    ClientMsgId,
    Count,
    Description,
    FileName,
    Id,
    MessageText,
    Mime,
    Seq,
    Sha256,
    Title,
    Watermark,
)
from shared.events.registry import registry

ConversationKind = Literal["direct", "group", "support"]
LinkKind = Literal["deal", "tender", "company", "contact", "call", "task"]


class Attachment(EventPart):
    """A file uploaded before the message was sent; the message refers to it by id."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"name"})

    file_id: Id
    name: FileName
    mime: Mime
    size: Count
    sha256: Sha256


class ObjectLink(EventPart):
    """A link to a business object of the host system (a deal, a tender notice, a contact …)."""

    personal_fields: ClassVar[frozenset[str]] = frozenset({"title"})

    kind: LinkKind
    id: Id
    title: Title


def _unique(values: tuple[str, ...], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat")


@registry.register
class ConversationStarted(Event):
    """A conversation exists; `members` are its first members (more join by MemberAdded)."""

    type: Literal["ConversationStarted"] = "ConversationStarted"
    schema_version: Literal[1] = 1
    personal_fields: ClassVar[frozenset[str]] = frozenset({"title", "description"})

    conversation_id: Id
    kind: ConversationKind
    title: Title = ""
    description: Description = ""
    avatar_color: AvatarColor | None = None
    members: tuple[Id, ...] = Field(min_length=1, max_length=MEMBERS_MAX)
    created_by: Id

    @model_validator(mode="after")
    def _members_are_unique(self) -> Self:
        _unique(self.members, "members")
        return self


@registry.register
class MemberAdded(Event):
    type: Literal["MemberAdded"] = "MemberAdded"
    schema_version: Literal[1] = 1

    conversation_id: Id
    user_id: Id
    added_by: Id


@registry.register
class MemberRemoved(Event):
    """A member left (`reason="left"`, by themselves) or was removed by someone else."""

    type: Literal["MemberRemoved"] = "MemberRemoved"
    schema_version: Literal[1] = 1

    conversation_id: Id
    user_id: Id
    removed_by: Id
    reason: Literal["left", "removed"]


@registry.register
class ConversationDetailsChanged(Event):
    """Only the details that changed are set; None means unchanged."""

    type: Literal["ConversationDetailsChanged"] = "ConversationDetailsChanged"
    schema_version: Literal[1] = 1
    personal_fields: ClassVar[frozenset[str]] = frozenset({"title", "description"})

    conversation_id: Id
    title: Title | None = None
    description: Description | None = None
    avatar_color: AvatarColor | None = None
    changed_by: Id

    @model_validator(mode="after")
    def _something_changed(self) -> Self:
        if self.title is None and self.description is None and self.avatar_color is None:
            raise ValueError("at least one of title, description, avatar_color must be set")
        return self


@registry.register
class MessageSent(Event):
    """A message, numbered `seq` within its conversation. Its event id is `ids.message_event_id`."""

    type: Literal["MessageSent"] = "MessageSent"
    schema_version: Literal[1] = 1
    personal_fields: ClassVar[frozenset[str]] = frozenset({"text", "attachments", "links"})

    conversation_id: Id
    message_id: Id
    seq: Seq
    sender_id: Id
    client_msg_id: ClientMsgId
    text: MessageText = ""
    attachments: tuple[Attachment, ...] = Field(default=(), max_length=ATTACHMENTS_MAX)
    links: tuple[ObjectLink, ...] = Field(default=(), max_length=LINKS_MAX)
    reply_to: Id | None = None

    @model_validator(mode="after")
    def _has_content(self) -> Self:
        # Runs on every decode of every message (read-all, each worker): isspace() stops at the first
        # letter where strip() copied the text, and one attachment cannot repeat.
        if (not self.text or self.text.isspace()) and not self.attachments and not self.links:
            raise ValueError("a message needs a text, an attachment or a link")
        if len(self.attachments) > 1:
            _unique(tuple(a.file_id for a in self.attachments), "attachment file ids")
        return self


@registry.register
class MessageEdited(Event):
    type: Literal["MessageEdited"] = "MessageEdited"
    schema_version: Literal[1] = 1
    personal_fields: ClassVar[frozenset[str]] = frozenset({"text"})

    conversation_id: Id
    message_id: Id
    seq: Seq
    text: MessageText
    edited_by: Id


@registry.register
class MessageRetracted(Event):
    """The message is withdrawn: read models hide its content; the store keeps it for audit."""

    type: Literal["MessageRetracted"] = "MessageRetracted"
    schema_version: Literal[1] = 1

    conversation_id: Id
    message_id: Id
    seq: Seq
    retracted_by: Id


@registry.register
class Delivered(Event):
    """Watermark: every message with seq <= up_to_seq reached `user_id`. A lower one is ignored."""

    type: Literal["Delivered"] = "Delivered"
    schema_version: Literal[1] = 1

    conversation_id: Id
    user_id: Id
    up_to_seq: Watermark


@registry.register
class Read(Event):
    """Watermark: `user_id` read every message with seq <= up_to_seq (which implies delivered)."""

    type: Literal["Read"] = "Read"
    schema_version: Literal[1] = 1

    conversation_id: Id
    user_id: Id
    up_to_seq: Watermark


@registry.register
class ConversationExpired(Event):
    """Retention: the conversation's keys were destroyed (its texts, titles and file names no longer
    read), `retention_days` after its last activity; its ids, times and receipts stay."""

    type: Literal["ConversationExpired"] = "ConversationExpired"
    schema_version: Literal[1] = 1

    conversation_id: Id
    kind: ConversationKind
    retention_days: int = Field(strict=True, ge=1)
