"""Field types shared by the catalogue: every string is NUL-free and bounded, every time UTC.

Limits are module constants with the reason for their value, so that the gateway can quote them in
its problem+json answers (`limit`, `size`) and other systems can read them from the JSON Schema.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field, Strict
from pydantic.config import JsonDict

# Ids come from the host system (user `sub` claims) or are UUIDs we generate. 200 leaves room for
# long host ids (e.g. an LDAP DN or a URN) while keeping a stream id well under an index key limit.
ID_MAX = 200
# The contract's message limit: a chat message, not a document; longer content is an attachment.
MESSAGE_TEXT_MAX = 16_000
# Internal notes are like messages (an agent pastes a log excerpt): the same limit.
NOTE_TEXT_MAX = 16_000
# A conversation or object-link title is one line in a list; 200 fits any real one.
TITLE_MAX = 200
# A conversation description or a short comment (escalation, rating): a paragraph, not a page.
DESCRIPTION_MAX = 2_000
COMMENT_MAX = 2_000
# A ticket subject is an e-mail-like subject line; RFC 5322 recommends 78, real ones run longer.
SUBJECT_MAX = 300
# People's display names from token claims.
NAME_MAX = 200
# Most file systems cap a file name at 255 bytes; we count characters, which is at least as lenient.
FILE_NAME_MAX = 255
# RFC 6838: type and subtype are at most 127 characters each.
MIME_MAX = 255
# client_msg_id is chosen by the client (a UUID or a counter); 64 fits any reasonable scheme.
CLIENT_MSG_ID_MAX = 64
# Channel names: "chat", "web_form", "email" or an integration's short name.
CHANNEL_MAX = 64
# A tag is a label, not a sentence.
TAG_MAX = 64
# Audit filter values: ids, types, time bounds.
FILTER_VALUE_MAX = 1_000

# Collection limits keep one event small (the relay publishes it as one broker message, and
# NATS's default max_payload is 1 MiB). Bigger groups grow by MemberAdded events.
MEMBERS_MAX = 1_000
ATTACHMENTS_MAX = 20
LINKS_MAX = 20
TAGS_MAX = 50
ROLES_MAX = 16
FILTERS_MAX = 32

# PostgreSQL's jsonb cannot store U+0000, so a NUL in any string would fail the append (or, worse,
# be accepted on SQLite and break a later migration to PostgreSQL). The pattern documents the rule
# in the JSON Schema; the validator gives the clear error message.
_NO_NUL_SCHEMA: JsonDict = {"pattern": "^[^\\u0000]*$"}


def _reject_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (U+0000)")
    return value


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _text(min_length: int, max_length: int) -> Any:
    """Length bounds plus the NUL rule in the JSON Schema (bounds first, so errors say "string")."""
    return Field(min_length=min_length, max_length=max_length, json_schema_extra=_NO_NUL_SCHEMA)


_NUL_FREE = AfterValidator(_reject_nul)

Id = Annotated[str, _text(1, ID_MAX), _NUL_FREE]
"""Any id: non-empty, at most ID_MAX characters. User ids are the host's `sub`, or `system:<service>`."""

MessageText = Annotated[str, _text(0, MESSAGE_TEXT_MAX), _NUL_FREE]
NoteText = Annotated[str, _text(1, NOTE_TEXT_MAX), _NUL_FREE]
Title = Annotated[str, _text(0, TITLE_MAX), _NUL_FREE]
Description = Annotated[str, _text(0, DESCRIPTION_MAX), _NUL_FREE]
Comment = Annotated[str, _text(1, COMMENT_MAX), _NUL_FREE]
Subject = Annotated[str, _text(1, SUBJECT_MAX), _NUL_FREE]
PersonName = Annotated[str, _text(1, NAME_MAX), _NUL_FREE]
FileName = Annotated[str, _text(1, FILE_NAME_MAX), _NUL_FREE]
Mime = Annotated[str, Field(min_length=3, max_length=MIME_MAX, pattern=r"^[A-Za-z0-9][\w!#$&^.+-]*/[\w!#$&^.+-]+$")]
ClientMsgId = Annotated[str, _text(1, CLIENT_MSG_ID_MAX), _NUL_FREE]
Channel = Annotated[str, _text(1, CHANNEL_MAX), _NUL_FREE]
Tag = Annotated[str, _text(1, TAG_MAX), _NUL_FREE]
FilterValue = Annotated[str, _text(0, FILTER_VALUE_MAX), _NUL_FREE]
AvatarColor = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

# Strict numbers: "5" or true for a count is a client bug, not something to coerce silently.
Seq = Annotated[int, Strict(), Field(ge=1)]
"""A message's number within its conversation: 1, 2, 3 …"""
Watermark = Annotated[int, Strict(), Field(ge=0)]
"""A Delivered/Read watermark: every message with seq <= it; 0 means none yet."""
Count = Annotated[int, Strict(), Field(ge=0)]
Seconds = Annotated[int, Strict(), Field(ge=0)]
PositiveSeconds = Annotated[int, Strict(), Field(ge=1)]
Score = Annotated[int, Strict(), Field(ge=1, le=5)]

UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A time zone-aware time, normalised to UTC (naive datetimes are rejected: their zone is a guess)."""

Line = Literal[1, 2, 3]
"""Support line: 1 first contact, 2 specialists, 3 engineers."""
Segment = Literal["customers", "suppliers"]
Role = Literal["user", "agent", "supervisor", "auditor", "admin"]
