"""Checking command inputs that do not depend on a conversation's state (pure, no I/O).

The routes' schemas check types and shapes first; these checks are the write side's own guard, so
that a caller other than the routes (a CLI, a test, the support service) cannot write a bad event
either. Every failure is an `Invalid(field, message)` or a `TooLarge(what, limit, size)`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from services.gateway.errors import Invalid, TooLarge
from shared.events.conversation import Attachment, ObjectLink
from shared.events.fields import (
    ATTACHMENTS_MAX,
    CLIENT_MSG_ID_MAX,
    DESCRIPTION_MAX,
    ID_MAX,
    LINKS_MAX,
    MEMBERS_MAX,
    TITLE_MAX,
)

P = TypeVar("P", bound=BaseModel)

_AVATAR_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")


@dataclass(frozen=True, slots=True)
class AttachmentInput:
    """A file's metadata as the file store knows it; the routes resolve a `file_id` to this."""

    file_id: str
    name: str
    mime: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class LinkInput:
    """A link to a business object of the host system: kind (deal, tender …), its id, a title."""

    kind: str
    id: str
    title: str


def check_id(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid(field, "must be a non-empty string")
    if len(value) > ID_MAX:
        raise Invalid(field, f"must be at most {ID_MAX} characters")
    if "\x00" in value:
        raise Invalid(field, "must not contain NUL characters")
    return value


def check_text(field: str, value: object, limit: int) -> str:
    """A free text (title, description, message): a string, NUL-free, at most `limit` characters."""
    if not isinstance(value, str):
        raise Invalid(field, "must be a string")
    if len(value) > limit:
        raise TooLarge(field, limit, len(value))
    if "\x00" in value:
        raise Invalid(field, "must not contain NUL characters")
    return value


def check_title(value: object) -> str:
    return check_text("title", value, TITLE_MAX)


def check_description(value: object) -> str:
    return check_text("description", value, DESCRIPTION_MAX)


def check_avatar_color(value: object) -> str:
    if not isinstance(value, str) or not _AVATAR_COLOR.match(value):
        raise Invalid("avatar_color", "must be a colour like #1a2b3c")
    return value


def check_client_msg_id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= CLIENT_MSG_ID_MAX:
        raise Invalid("client_msg_id", f"must be a string of 1 to {CLIENT_MSG_ID_MAX} characters")
    if "\x00" in value:
        raise Invalid("client_msg_id", "must not contain NUL characters")
    return value


def check_seq(field: str, value: object) -> int:
    # bool is an int in Python; `true` for a sequence number is a client bug, not 1.
    if type(value) is not int or value < 0:
        raise Invalid(field, "must be a whole number, 0 or more")
    return value


def check_members(caller: str, kind: str, members: Sequence[str]) -> tuple[str, ...]:
    """The members in the order given, without repeats, with the caller (listed or not) first."""
    if isinstance(members, str):
        raise Invalid("members", "must be a list of user ids")
    given = [check_id(f"members[{i}]", m) for i, m in enumerate(members)]
    unique = tuple(dict.fromkeys([caller, *given]))
    if kind == "direct" and len(unique) != 2:
        raise Invalid("members", "a direct conversation is between exactly two users, one of them the caller")
    if kind == "group" and len(unique) > MEMBERS_MAX:
        raise TooLarge("members", MEMBERS_MAX, len(unique))
    return unique


def check_attachments(attachments: Sequence[AttachmentInput]) -> tuple[Attachment, ...]:
    if len(attachments) > ATTACHMENTS_MAX:
        raise TooLarge("attachments", ATTACHMENTS_MAX, len(attachments))
    parts = tuple(
        _part(Attachment, f"attachments[{i}]", _fields(a, AttachmentInput)) for i, a in enumerate(attachments)
    )
    if len({a.file_id for a in parts}) != len(parts):
        raise Invalid("attachments", "the same file is attached twice")
    return parts


def check_links(links: Sequence[LinkInput]) -> tuple[ObjectLink, ...]:
    if len(links) > LINKS_MAX:
        raise TooLarge("links", LINKS_MAX, len(links))
    return tuple(_part(ObjectLink, f"links[{i}]", _fields(link, LinkInput)) for i, link in enumerate(links))


def _fields(value: object, kind: type[AttachmentInput] | type[LinkInput]) -> dict[str, Any]:
    if not isinstance(value, kind):
        raise Invalid(kind.__name__, f"must be a {kind.__name__}")
    return {name: getattr(value, name) for name in kind.__slots__}


def _part(model: type[P], field: str, values: dict[str, Any]) -> P:
    """The catalogue's own model checks the part (id lengths, MIME and SHA-256 patterns, link kinds)."""
    try:
        return model.model_validate(values, strict=True)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Invalid(f"{field}.{where}" if where else field, first["msg"]) from e
