"""DirectoryService: record who has been seen, and what their token said, in `user-<id>` streams.

`observe(principal)` runs on every authenticated request, so its usual cost is one dict lookup and
one tuple comparison: the last recorded profile of each user is cached (LRU). The stream is read
only for a user not in the cache, and written only when the token's claims differ from it.

Event ids are deterministic, so two processes (or two concurrent requests) that see the same new
user or the same change write one event: UserSeen's id derives from the user id; a change's id from
the user id, the stream version it follows and the new profile (the version makes a return to an
earlier profile, A → B → A, a new fact rather than a repeat of the first A → B).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from services.gateway.auth import Principal
from services.gateway.commands.cache import LruCache
from services.gateway.commands.executor import DEFAULT_CACHE_SIZE, MAX_ATTEMPTS, Clock, utcnow
from services.gateway.errors import Conflict
from shared.events.base import Event
from shared.events.envelope import NewEvent, RecordedEvent
from shared.events.ids import deterministic_id
from shared.events.users import PersonalDataErased, UserProfileChanged, UserSeen
from shared.store.port import EventStore, WrongExpectedVersion


@dataclass(frozen=True, slots=True)
class Profile:
    """What the directory records of a user: the claims, normalised (sorted roles)."""

    name: str
    roles: tuple[str, ...]
    segment: str | None
    lines: tuple[int, ...]

    @classmethod
    def of(cls, principal: Principal) -> Profile:
        return cls(principal.name, tuple(sorted(principal.roles)), principal.segment, principal.lines)


@dataclass(slots=True)
class _Known:
    version: int
    profile: Profile | None  # None: never seen, or erased


def user_stream_id(user_id: str) -> str:
    return f"user-{user_id}"


class DirectoryService:
    def __init__(
        self,
        store: EventStore,
        clock: Clock = utcnow,
        *,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._store = store
        self._clock = clock
        self._max_attempts = max_attempts
        self.cache: LruCache[str, _Known] = LruCache(cache_size)

    async def observe(self, principal: Principal) -> int:
        """Record the principal's profile if new or changed; the position appended, or 0."""
        profile = Profile.of(principal)
        known = self.cache.get(principal.user_id)
        if known is not None and known.profile == profile:
            return 0
        stream = user_stream_id(principal.user_id)
        known = known or _Known(0, None)
        for _ in range(self._max_attempts):
            await self._refresh(stream, known)
            self.cache.put(principal.user_id, known)
            if known.profile == profile:
                return 0
            try:
                result = await self._store.append(stream, [self._event(principal, known, profile)], known.version)
            except WrongExpectedVersion:
                continue  # another process recorded something first: read it and compare again
            known.version, known.profile = result.last_version, profile
            return result.last_position
        raise Conflict(f"user {principal.user_id!r} kept changing; retry the request")

    async def _refresh(self, stream: str, known: _Known) -> None:
        for record in await self._store.read_stream(stream, from_version=known.version + 1):
            known.profile = _fold(known.profile, record)
            known.version = record.stream_version

    def _event(self, principal: Principal, known: _Known, profile: Profile) -> NewEvent:
        fields: dict[str, Any] = {"user_id": principal.user_id, "name": profile.name, "roles": profile.roles}
        fields |= {"segment": profile.segment, "lines": profile.lines}
        event: Event
        if known.version == 0:
            event, event_id = UserSeen(**fields), deterministic_id("UserSeen", principal.user_id)
        else:
            claims = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode()
            event = UserProfileChanged(**fields)
            event_id = deterministic_id("UserProfileChanged", principal.user_id, str(known.version), claims)
        return NewEvent(event, principal.user_id, event_id, occurred_at=self._clock())


def _fold(profile: Profile | None, record: RecordedEvent) -> Profile | None:
    event = record.event
    if isinstance(event, UserSeen | UserProfileChanged):
        return Profile(event.name, tuple(sorted(event.roles)), event.segment, tuple(event.lines))
    if isinstance(event, PersonalDataErased):
        return None  # the name is gone; a later request records the profile again
    return profile
