"""Personal data sealed per person (crypto-shredding, 152-FZ; docs/audit.md "Personal data").

At append, each field an event lists in `personal_fields` is replaced by a sealed value
`{"$sealed": <key id>, "t": "s"|"l"|"o", "ct": base64(nonce ‖ AES-256-GCM ciphertext)}` under the
current key of the event's data subject (who wrote it, or whom it describes: `subject_of`). The
hash chain covers the sealed form, so destroying a key changes no stored byte and `audit verify`
keeps passing. Reads open sealed values again; once the subject's keys are destroyed (erasure) they
open to a marker of the same JSON type ("[erased]", [] or {}) that every event model accepts.

Keys live in `personal_keys` (one row per key: key id, subject, scope — the conversation, or "" for
the person's own data —, 32 random bytes, NULL once destroyed by an erasure or by retention).
Each process caches keys for up to KEY_KEEP_SECONDS. Every destruction of keys adds one to the
counter in `personal_key_erasures`, in the same transaction; a process trusts its cache for
KEY_CACHE_SECONDS after it last read that counter unchanged (read again in the background from
KEY_REFRESH_SECONDS on, so that steady traffic never waits for it), and drops the whole cache when it
moved. So an erasure made by another process takes effect here within KEY_CACHE_SECONDS (one in this
process at once), and a send costs no key read: one row is read per process every KEY_CACHE_SECONDS,
where each (person, conversation) key used to be read again every KEY_CACHE_SECONDS, which made
nearly every message of a person who writes less often than that pay a transaction of its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import pybase64
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.events.envelope import NewEvent, RecordedEvent
from shared.events.registry import UnknownEventType, registry
from shared.logging import get_logger
from shared.store.hashing import canonical_json
from shared.store.port import StoreUnavailable
from shared.store.tables import UtcDateTime, metadata

log = get_logger(__name__)

SEALED = "$sealed"
ERASED_TEXT = "[erased]"
KEY_CACHE_SECONDS = 2.0  # how long another process's erasure may take to reach this one's reads
KEY_REFRESH_SECONDS = 1.5  # from then on the counter is read again in the background
KEY_KEEP_SECONDS = 600.0  # how long a key stays cached at all: bounds the cache by recent use
OWNERS_PER_QUERY = 200  # (subject, scope) pairs per key query: 400 bound parameters, below SQLite's limit
NONCE_BYTES = 12  # AES-GCM's 96-bit nonce, random per sealed field


class _Nonces:
    """Random AES-GCM nonces from the OS's CSPRNG, drawn a block at a time.

    `os.urandom` releases the GIL for its syscall, and in a busy process (the gateway's store writer
    and the loop both running Python) taking it back waited for the other thread's switch interval,
    up to 5 ms: a profile of the gateway at 500 msg/s found the loop waiting there for more of its
    time than the encryption took. Each nonce is still 12 bytes of the OS's randomness, used once;
    a forked child starts a block of its own (it must never reuse the parent's)."""

    BLOCK = NONCE_BYTES * 1024

    def __init__(self) -> None:
        self._block = b""
        self._at = 0
        self._lock = threading.Lock()  # a nonce handed out twice would break GCM: one taker at a time
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._block, self._at, self._lock = b"", 0, threading.Lock()

    def next(self) -> bytes:
        with self._lock:
            at = self._at
            if at + NONCE_BYTES > len(self._block):
                self._block, at = os.urandom(self.BLOCK), 0
            self._at = at + NONCE_BYTES
            return self._block[at : at + NONCE_BYTES]


_nonces = _Nonces()

personal_keys = Table(
    "personal_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("subject_id", String(200), nullable=False),
    # The conversation the sealed fields belong to ("" for the person's own data, e.g. their name):
    # retention destroys a conversation's keys, an erasure all of a person's.
    Column("scope", String(200), nullable=False),
    Column("key", LargeBinary, nullable=True),  # NULL: destroyed by an erasure or by retention
    Column("created_at", UtcDateTime, nullable=False),
    Column("erased_at", UtcDateTime, nullable=True),
    Index("ix_personal_keys_subject_id", "subject_id"),
    Index("ix_personal_keys_scope", "scope"),
)

# One row (id 1): how many times keys were destroyed, ever. Read to validate the caches (above).
personal_key_erasures = Table(
    "personal_key_erasures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
)

# Whose personal data an event holds, by type: the payload field naming them (default: the actor).
SUBJECT_FIELDS: dict[str, str] = {
    "UserSeen": "user_id",
    "UserProfileChanged": "user_id",
    "ConversationStarted": "created_by",
    "ConversationDetailsChanged": "changed_by",
    "MessageSent": "sender_id",
    "MessageEdited": "edited_by",
    "TicketOpened": "requester_id",
    "TicketNoteAdded": "author_id",
    "TicketEscalated": "by",
    "TicketRated": "by",
}


def subject_of(type_: str, actor: str, payload: Mapping[str, Any]) -> str:
    value = payload.get(SUBJECT_FIELDS.get(type_, ""))
    return value if isinstance(value, str) else actor


def scope_of(payload: Mapping[str, Any]) -> str:
    value = payload.get("conversation_id")
    return value if isinstance(value, str) else ""


def _kind(value: Any) -> str:
    return "l" if isinstance(value, list) else "o" if isinstance(value, dict) else "s"


def erased(kind: str) -> Any:
    """What a sealed value opens to once its key is gone."""
    return [] if kind == "l" else {} if kind == "o" else ERASED_TEXT


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and SEALED in value


_PERSONAL: dict[str, frozenset[str] | None] = {}


def personal_fields_of(type_: str) -> frozenset[str] | None:
    """The personal fields of a type's current model; None for a type this version does not know
    (its payload is searched whole)."""
    if type_ not in _PERSONAL:
        try:
            _PERSONAL[type_] = registry.model_for(type_, registry.latest_version(type_)).personal_fields
        except UnknownEventType:
            return None
    return _PERSONAL[type_]


def _log_failed_refresh(task: asyncio.Task[None]) -> None:
    """A check that failed (logged, and retrieved: a background one has nobody awaiting it); the first
    use past KEY_CACHE_SECONDS reads again itself."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning("key_cache_check_failed", error=str(error))


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class KeyRing:
    """Seals and opens personal fields; creates, caches and destroys the keys."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Reads on SQLite take no lock, whatever the engine's default (a worker's engine begins IMMEDIATE).
        self._reader = engine.execution_options(sqlite_begin="DEFERRED")
        # Read-then-insert: on SQLite take the write lock at BEGIN (an upgrade later would fail at once).
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        self._current: dict[tuple[str, str], tuple[str, AESGCM, float]] = {}  # (subject, scope) -> key
        self._by_id: dict[str, tuple[AESGCM | None, float]] = {}  # key id -> (cipher or None, cached at)
        self._generation: int | None = None  # the erasure counter the caches were checked against
        self._checked_at = float("-inf")  # when (monotonic) it was last read
        self._checking: asyncio.Task[None] | None = None  # the read in flight, shared by its waiters
        # Keys being read or created, shared by every caller that misses them meanwhile (`_current_keys`).
        self._loading: dict[tuple[str, str], asyncio.Future[tuple[str, AESGCM]]] = {}
        self._to_load: list[tuple[str, str]] = []  # queued for the loader's next round
        self._loader: asyncio.Task[None] | None = None

    async def seal(self, events: Sequence[NewEvent]) -> list[bytes]:
        """The stored payload bytes of each event, personal fields sealed."""
        planned: list[tuple[dict[str, Any], list[str], tuple[str, str] | None]] = []
        for e in events:
            payload = e.event.payload()
            # Empty values ("", [], None) hold no personal data: left as they are (and cheaper to read).
            fields = [f for f in type(e.event).personal_fields if payload.get(f)]
            owner = (subject_of(e.event.type, e.actor, payload), scope_of(payload)) if fields else None
            planned.append((payload, fields, owner))
        # All the keys of the batch at once: a busy group's batch holds the first messages of many
        # members, and a transaction per new key held up the whole batch (and SQLite's write lock).
        keys = await self._current_keys({owner for _, _, owner in planned if owner is not None})
        out: list[bytes] = []
        for payload, fields, owner in planned:
            if owner is not None:
                key_id, aead = keys[owner]
                aad = key_id.encode()
                for f in fields:
                    nonce = _nonces.next()
                    ct = nonce + aead.encrypt(nonce, canonical_json(payload[f]), aad)
                    payload[f] = {SEALED: key_id, "t": _kind(payload[f]), "ct": pybase64.b64encode(ct).decode()}
            out.append(canonical_json(payload))
        return out

    async def open(self, events: list[RecordedEvent]) -> list[RecordedEvent]:
        """The same events with their sealed fields opened (or shown erased), in place: the events
        were just built from rows, and the read path must stay allocation-light."""
        found: list[tuple[dict[str, Any], str]] = []
        for e in events:
            p = e.payload
            fields = personal_fields_of(e.type)
            for f in fields if fields is not None else list(p):
                v = p.get(f)
                if v.__class__ is dict and SEALED in v:
                    found.append((p, f))
        if not found:
            return events
        aeads = await self._aeads({p[f][SEALED] for p, f in found})
        # pybase64 (SIMD): binascii took ~3 µs of a 1 KB text's ~8 µs here, the most of any step.
        b64decode, loads = pybase64.b64decode, orjson.loads
        for p, f in found:
            v = p[f]
            aead = aeads.get(v[SEALED])
            if aead is None:
                p[f] = erased(v.get("t", "s"))
                continue
            raw = b64decode(v["ct"], validate=True)
            p[f] = loads(aead.decrypt(raw[:12], raw[12:], str(v[SEALED]).encode()))
        return events

    async def erase(self, subject: str) -> int:
        """Destroy every key of `subject` (all conversations); returns how many were destroyed."""
        return await self._destroy(personal_keys.c.subject_id == subject)

    async def expire(self, conversation_id: str) -> int:
        """Destroy every key of one conversation (retention); returns how many were destroyed."""
        return await self._destroy(personal_keys.c.scope == conversation_id)

    async def live_scopes(self, scopes: Sequence[str]) -> set[str]:
        """Those of `scopes` that still have a key."""
        k = personal_keys.c
        async with self._reader.connect() as conn:
            rows = await conn.execute(select(k.scope).where(k.scope.in_(list(scopes)), k.key.is_not(None)).distinct())
            return {r.scope for r in rows}

    async def _destroy(self, which: Any) -> int:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(personal_keys)
                .where(which, personal_keys.c.key.is_not(None))
                .values(key=None, erased_at=datetime.now(UTC))
            )
            if result.rowcount:  # tells every other process's cache (see the module's docstring)
                counter = personal_key_erasures.c
                await conn.execute(
                    update(personal_key_erasures).where(counter.id == 1).values(generation=counter.generation + 1)
                )
        self._forget()
        return int(result.rowcount)

    def _drop(self) -> None:
        self._current.clear()
        self._by_id.clear()

    def _forget(self) -> None:
        """After this process destroyed keys: drop the caches and check the counter on the next use."""
        self._drop()
        self._generation, self._checked_at = None, float("-inf")

    async def _validate(self) -> None:
        """Trust the caches for KEY_CACHE_SECONDS more, or drop them when keys were destroyed since they
        were checked. Concurrent callers share one read. Past KEY_REFRESH_SECONDS the read starts in the
        background, so that under steady use nobody waits for it (it held up every send in the process
        for a round trip every KEY_CACHE_SECONDS)."""
        age = time.monotonic() - self._checked_at
        if age < KEY_CACHE_SECONDS:
            if age >= KEY_REFRESH_SECONDS:
                self._check()
            return
        await asyncio.shield(self._check())

    def _check(self) -> asyncio.Task[None]:
        """The read of the erasure counter in flight, started when there is none."""
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._read_generation())
            self._checking.add_done_callback(_log_failed_refresh)  # also when nobody awaits it
        return self._checking

    async def _read_generation(self) -> None:
        started = time.monotonic()
        async with self._reader.connect() as conn:
            generation = (
                await conn.execute(select(personal_key_erasures.c.generation).where(personal_key_erasures.c.id == 1))
            ).scalar()
        if generation is None or generation != self._generation:
            self._drop()
        if generation is None:  # the counter row is missing: trust no cache, read keys each time
            return
        self._generation, self._checked_at = int(generation), started

    async def _current_keys(self, owners: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, AESGCM]]:
        """The current key of each (subject, scope), created where there is none.

        What the cache lacks goes to one loader task, which reads (and creates) the keys of every
        caller that missed meanwhile together: after a restart, or when many people write their first
        message at once, each send read or created its key in a transaction of its own (at 500 new
        conversations a second on PostgreSQL that made sends wait up to half a second)."""
        if not owners:
            return {}
        await self._validate()
        now = time.monotonic()
        out: dict[tuple[str, str], tuple[str, AESGCM]] = {}
        waiting: list[tuple[tuple[str, str], asyncio.Future[tuple[str, AESGCM]]]] = []
        for owner in owners:
            cached = self._current.get(owner)
            if cached is not None and now - cached[2] < KEY_KEEP_SECONDS:
                out[owner] = (cached[0], cached[1])
                continue
            future = self._loading.get(owner)
            if future is None:
                future = self._loading[owner] = asyncio.get_running_loop().create_future()
                future.add_done_callback(_retrieve)  # a caller that gave up leaves no unretrieved error
                self._to_load.append(owner)
            waiting.append((owner, future))
        if self._to_load and (self._loader is None or self._loader.done()):
            self._loader = asyncio.create_task(self._load_keys(), name="personal-keys")
        for owner, future in waiting:
            out[owner] = await asyncio.shield(future)  # a cancelled caller must not cancel the others' wait
        return out

    async def _load_keys(self) -> None:
        """Rounds of `_read_or_create` over what was queued, until nothing is."""
        while self._to_load:
            owners, self._to_load = set(self._to_load), []
            try:
                found = await self._read_or_create(owners)
            except BaseException as e:
                for owner in owners:
                    future = self._loading.pop(owner)
                    if not future.done():
                        future.set_exception(e if isinstance(e, Exception) else StoreUnavailable("stopping"))
                if not isinstance(e, Exception):
                    raise
                continue
            for owner in owners:
                future = self._loading.pop(owner)
                if not future.done():
                    future.set_result(found[owner])

    async def _read_or_create(self, owners: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, AESGCM]]:
        """The keys of `owners`, read in one query outside any write transaction (on SQLite a read
        takes no lock); only when some have none does one write transaction create them all."""
        now = time.monotonic()
        generation = self._generation  # keys read while the caches were dropped are not kept (below)
        async with self._reader.connect() as conn:
            found = await self._read_current(conn, owners)
        if len(found) < len(owners):
            async with self._writer.begin() as conn:
                found |= await self._read_current(conn, owners - found.keys())  # another process may have
                new = {owner: (uuid.uuid4().hex, AESGCM.generate_key(256)) for owner in sorted(owners - found.keys())}
                if new:  # two processes may both create one: harmless, an erasure destroys both
                    created_at = datetime.now(UTC)
                    rows = [
                        {"key_id": key_id, "subject_id": subject, "scope": scope, "key": key, "created_at": created_at}
                        for (subject, scope), (key_id, key) in new.items()
                    ]
                    await conn.execute(personal_keys.insert(), rows)
                    found |= new
        keep = self._generation == generation
        out: dict[tuple[str, str], tuple[str, AESGCM]] = {}
        for owner, (key_id, key) in found.items():
            aead = AESGCM(key)
            out[owner] = (key_id, aead)
            if keep:
                # Else the caches were dropped while this read ran: the key may be one an erasure destroyed
                # meanwhile, and kept it would outlive the 2 s bound. Used once, as a read a moment earlier.
                self._current[owner] = (key_id, aead, now)
                self._by_id[key_id] = (aead, now)
        return out

    @staticmethod
    async def _read_current(
        conn: AsyncConnection, owners: set[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[str, bytes]]:
        """A live key of each of `owners` that has one (any one, when two processes made two)."""
        k = personal_keys.c
        found: dict[tuple[str, str], tuple[str, bytes]] = {}
        ordered = sorted(owners)
        for start in range(0, len(ordered), OWNERS_PER_QUERY):
            chunk = ordered[start : start + OWNERS_PER_QUERY]
            query = select(k.subject_id, k.scope, k.key_id, k.key).where(
                tuple_(k.subject_id, k.scope).in_(chunk), k.key.is_not(None)
            )
            for row in await conn.execute(query):
                found.setdefault((row.subject_id, row.scope), (row.key_id, bytes(row.key)))
        return found

    async def _aeads(self, ids: set[str]) -> dict[str, AESGCM | None]:
        await self._validate()
        now = time.monotonic()
        out = {i: c[0] for i in ids if (c := self._by_id.get(i)) is not None and now - c[1] < KEY_KEEP_SECONDS}
        missing = ids - set(out)
        if missing:
            generation = self._generation
            k = personal_keys.c
            async with self._reader.connect() as conn:
                rows = (await conn.execute(select(k.key_id, k.key).where(k.key_id.in_(sorted(missing))))).all()
            found = {r.key_id: (None if r.key is None else AESGCM(bytes(r.key))) for r in rows}
            keep = self._generation == generation  # as in `_current_key`
            for i in missing:
                out[i] = found.get(i)
                if keep:
                    self._by_id[i] = (out[i], now)
        return out
