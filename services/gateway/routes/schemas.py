"""Request bodies. Strict (no type coercion: `"5"` is not a number, `true` is not 1) and closed
(`extra="forbid"`: an unknown field is a 422, not silently dropped). Text limits that come from
the configuration (message text) are checked by the commands (TooLarge, 413); fixed ones here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.events.fields import (
    ATTACHMENTS_MAX,
    CLIENT_MSG_ID_MAX,
    DESCRIPTION_MAX,
    ID_MAX,
    LINKS_MAX,
    MEMBERS_MAX,
    MESSAGE_TEXT_MAX,
    TITLE_MAX,
)

IdText = Annotated[str, StringConstraints(min_length=1, max_length=ID_MAX)]
# Twice the longest text: the commands answer 413 with the configured limit for anything between.
_TEXT_HARD_MAX = 2 * MESSAGE_TEXT_MAX


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NewConversation(Body):
    kind: Literal["direct", "group"]
    members: Annotated[list[IdText], Field(max_length=MEMBERS_MAX)]
    title: Annotated[str, Field(max_length=TITLE_MAX)] = ""
    description: Annotated[str, Field(max_length=DESCRIPTION_MAX)] = ""
    avatar_color: str | None = None


class ConversationChange(Body):
    title: Annotated[str, Field(max_length=TITLE_MAX)] | None = None
    description: Annotated[str, Field(max_length=DESCRIPTION_MAX)] | None = None
    avatar_color: str | None = None


class NewMember(Body):
    user_id: IdText


class Link(Body):
    kind: IdText
    id: IdText
    title: Annotated[str, Field(max_length=TITLE_MAX)] = ""


class NewMessage(Body):
    client_msg_id: Annotated[str, StringConstraints(min_length=1, max_length=CLIENT_MSG_ID_MAX)]
    text: Annotated[str, Field(max_length=_TEXT_HARD_MAX)] = ""
    attachments: Annotated[list[IdText], Field(max_length=ATTACHMENTS_MAX)] = []
    links: Annotated[list[Link], Field(max_length=LINKS_MAX)] = []
    reply_to: IdText | None = None


class MessageEdit(Body):
    text: Annotated[str, Field(max_length=_TEXT_HARD_MAX)]


class Watermark(Body):
    up_to_seq: Annotated[int, Field(ge=0)]


class Sent(BaseModel):
    message_id: str
    seq: int
    sent_at: datetime


class FileOut(BaseModel):
    file_id: str
    name: str
    mime: str
    size: int
    sha256: str


class MemberOut(BaseModel):
    conversation_id: str
    user_id: str
