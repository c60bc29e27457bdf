"""User stream (`user-<id>`): the directory's view of people, from the host's token claims.

Personal data: the name. Roles, segment and lines are attributes of the account, not of the person.
PersonalDataErased holds no personal data at all: it must stay readable after the erasure it
records, so its reason is a closed list and its reference an opaque request number.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from shared.events.base import Event
from shared.events.fields import ROLES_MAX, Id, Line, PersonName, Role, Segment
from shared.events.registry import registry

ErasureReason = Literal["data_subject_request", "retention_expired", "account_deleted", "legal_order"]


class _UserAttributes(Event):
    """What a token says about its user (claims `sub`, `name`, `roles`, `segment`, `lines`).

    Unknown roles in a token are dropped by the gateway before the event is written: the set of
    roles is part of the authorisation model, not free text.
    """

    personal_fields: ClassVar[frozenset[str]] = frozenset({"name"})

    user_id: Id
    name: PersonName
    roles: tuple[Role, ...] = Field(default=(), max_length=ROLES_MAX)
    segment: Segment | None = None
    lines: tuple[Line, ...] = Field(default=(), max_length=3)


@registry.register
class UserSeen(_UserAttributes):
    """The first time a user was seen (their first authenticated request)."""

    type: Literal["UserSeen"] = "UserSeen"
    schema_version: Literal[1] = 1


@registry.register
class UserProfileChanged(_UserAttributes):
    """A later token carried different claims; the event carries all of them, not a diff."""

    type: Literal["UserProfileChanged"] = "UserProfileChanged"
    schema_version: Literal[1] = 1


@registry.register
class PersonalDataErased(Event):
    """The person's key was destroyed (crypto-shredding): their marked fields no longer decrypt."""

    type: Literal["PersonalDataErased"] = "PersonalDataErased"
    schema_version: Literal[1] = 1

    user_id: Id
    erased_by: Id
    reason: ErasureReason
    reference: Id | None = None
