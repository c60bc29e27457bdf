"""Erasure by crypto-shredding: personal fields are sealed at rest; after one person's erasure their
texts, file names, link titles, conversation titles and name are unreadable everywhere — the store's
reads, every read model (also after a rebuild), the replay, both export formats — while `verify`
still passes and everyone else's data is intact. Retention expires a kind's old conversations the
same way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.audit.erasure import erase_person
from services.audit.export import export
from services.audit.queries import EventFilter
from services.audit.replay import replay, to_json
from services.audit.retention import expire_conversations
from services.projections.projector import Projector
from services.projections.rebuild import rebuild
from shared.config import load_settings
from shared.events.base import Event
from shared.events.conversation import Attachment, ConversationStarted, MessageEdited, MessageSent, ObjectLink
from shared.events.envelope import NewEvent
from shared.events.tickets import TicketNoteAdded, TicketOpened, TicketRated
from shared.events.users import UserSeen
from shared.store.engine import create_engine
from shared.store.migrate import migrate
from shared.store.personal import KEY_CACHE_SECONDS
from shared.store.sql import SqlEventStore
from shared.store.verify import verify_chain

ANNS = ["Anna Petrova", "+7 900 111", "+7 900 222", "anna-passport.pdf", "Anna's deal", "Anna and Boris"]
ANNS += ["Anna's printer is broken", "Anna is unhappy"]  # her support ticket's subject and rating comment
BORIS = ["Boris Ivanov", "Boris keeps this", "boris-contract.pdf", "Agent's own note stays"]


def _script() -> list[tuple[str, str, Event]]:
    c = "ab"

    def sent(seq: int, sender: str, body: str, file: str | None = None, link: str | None = None) -> MessageSent:
        files = () if file is None else (Attachment(file_id=f"f{seq}", name=file, mime="application/pdf", size=1,
                                                    sha256="0" * 64),)  # fmt: skip
        links = () if link is None else (ObjectLink(kind="deal", id="D-1", title=link),)
        return MessageSent(conversation_id=c, message_id=f"m{seq}", seq=seq, sender_id=sender, client_msg_id=f"c{seq}",
                           text=body, attachments=files, links=links)  # fmt: skip

    return [
        ("user-ann", "ann", UserSeen(user_id="ann", name="Anna Petrova", roles=("user",))),
        ("user-bob", "bob", UserSeen(user_id="bob", name="Boris Ivanov", roles=("user",))),
        (
            "conversation-ab",
            "ann",
            ConversationStarted(
                conversation_id=c, kind="group", title="Anna and Boris", members=("ann", "bob"), created_by="ann"
            ),
        ),
        ("conversation-ab", "ann", sent(1, "ann", "call me at +7 900 111", "anna-passport.pdf", "Anna's deal")),
        ("conversation-ab", "bob", sent(2, "bob", "Boris keeps this", "boris-contract.pdf")),
        (
            "conversation-ab",
            "ann",
            MessageEdited(conversation_id=c, message_id="m1", seq=1, text="now +7 900 222", edited_by="ann"),
        ),
        (
            "ticket-t1",
            "ann",
            TicketOpened(
                ticket_id="t1",
                conversation_id="support-ann",
                requester_id="ann",
                segment="customers",
                channel="chat",
                subject="Anna's printer is broken",
                priority="normal",
                line=1,
            ),
        ),
        (
            "ticket-t1",
            "agent1",
            TicketNoteAdded(ticket_id="t1", note_id="n1", author_id="agent1", text="Agent's own note stays"),
        ),
        ("ticket-t1", "ann", TicketRated(ticket_id="t1", score=2, comment="Anna is unhappy", by="ann")),
    ]


@pytest.fixture
async def env(database_url: str) -> AsyncIterator[tuple[SqlEventStore, AsyncEngine]]:
    migrate(database_url)
    store = await SqlEventStore.open(database_url)
    engine = create_engine(database_url, pool_size=2)
    try:
        for stream, actor, event in _script():
            await store.append(stream, [NewEvent(event, actor)])
        yield store, engine
    finally:
        await store.close()
        await engine.dispose()


async def project(store: SqlEventStore, engine: AsyncEngine) -> None:
    projector, after = Projector(engine, partitions=4), 0
    while batch := await store.read_all(after, 3):
        await projector.apply(batch)
        after = batch[-1].position


async def everything_readable(store: SqlEventStore, engine: AsyncEngine) -> str:
    """Every place an auditor or a user could read: store reads, rm_* tables, replay, both exports."""
    parts: list[Any] = [[e.payload for e in await store.read_all(0, 1000)]]
    async with engine.connect() as conn:
        tables = [r[0] for r in await conn.execute(text(_TABLES[conn.dialect.name]))]
        parts.extend([(await conn.execute(text(f"SELECT * FROM {table}"))).all() for table in tables])
        parts.extend(
            [b"".join([c async for c in export(conn, EventFilter(), fmt)]).decode() for fmt in ("jsonl", "csv")]
        )
    parts.append(to_json(replay("ab", await store.read_stream("conversation-ab"))))
    return repr(parts)


_TABLES = {
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'rm\\_%'",
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm\\_%' ESCAPE '\\'",
}


async def test_personal_fields_are_sealed_at_rest(env: tuple[SqlEventStore, AsyncEngine]) -> None:
    store, engine = env
    async with engine.connect() as conn:
        stored = repr((await conn.execute(text("SELECT payload FROM events"))).all())
    assert not [s for s in ANNS + BORIS if s in stored]
    readable = await everything_readable(store, engine)  # while nobody is erased, all is readable
    assert all(s in readable for s in ["Anna Petrova", "+7 900 111", "Boris keeps this"])


async def test_erasure_makes_one_persons_data_unreadable_everywhere_and_verify_passes(
    env: tuple[SqlEventStore, AsyncEngine],
) -> None:
    store, engine = env
    await project(store, engine)
    before = await everything_readable(store, engine)
    assert all(s in before for s in ANNS + BORIS)
    head_before = (await verify_chain(engine)).head_hash

    await erase_person(store, "ann", erased_by="dpo", reason="data_subject_request", reference="R-17")
    await project(store, engine)

    after = await everything_readable(store, engine)
    assert [s for s in ANNS if s in after] == []
    assert [s for s in BORIS if s in after] == BORIS
    verified = await verify_chain(engine)
    assert verified.ok and verified.checked == len(_script()) + 1
    assert (await store.read_all(0, 1000))[len(_script()) - 1].hash == head_before  # nothing stored changed
    messages = to_json(replay("ab", await store.read_stream("conversation-ab")))["messages"]
    first = messages[0]
    assert (first["sender_id"], first["text"], first["attachments"], first["links"]) == ("ann", "[erased]", [], [])
    assert "PersonalDataErased" in after and "R-17" in after

    await rebuild(engine, store, partitions=4)  # a rebuild from the store reads the erased form too
    assert [s for s in ANNS if s in await everything_readable(store, engine)] == []


async def test_retention_expires_a_kinds_old_conversations_only(env: tuple[SqlEventStore, AsyncEngine]) -> None:
    store, engine = env
    direct = ConversationStarted(conversation_id="xy", kind="direct", members=("bob", "carl"), created_by="bob")
    await store.append("conversation-xy", [NewEvent(direct, "bob")])
    kept = MessageSent(conversation_id="xy", message_id="x1", seq=1, sender_id="bob", client_msg_id="x1",
                       text="direct chats are kept")  # fmt: skip
    await store.append("conversation-xy", [NewEvent(kept, "bob")])
    await project(store, engine)
    settings = load_settings({}, retention_days_group=30)
    soon, later = datetime.now(UTC) + timedelta(days=29), datetime.now(UTC) + timedelta(days=31)

    assert await expire_conversations(store, engine, settings, now=soon) == []
    assert await expire_conversations(store, engine, settings, now=later) == ["ab"]
    assert await expire_conversations(store, engine, settings, now=later) == []  # once
    await project(store, engine)

    after = await everything_readable(store, engine)
    conversation_ab = ["+7 900 111", "+7 900 222", "anna-passport.pdf", "Anna's deal", "Anna and Boris",
                       "Boris keeps this", "boris-contract.pdf"]  # fmt: skip
    assert [s for s in conversation_ab if s in after] == []
    assert all(s in after for s in ["Anna Petrova", "Boris Ivanov", "direct chats are kept", "ConversationExpired"])
    assert (await verify_chain(engine)).ok


async def test_another_processs_erasure_reaches_this_ones_cache_in_seconds_and_sends_read_no_keys(
    env: tuple[SqlEventStore, AsyncEngine], database_url: str
) -> None:
    store, _ = env  # this process: it has sealed (and so cached) Anna's keys
    other = await SqlEventStore.open(database_url)  # another process, e.g. the CLI of `audit erase`
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    await asyncio.sleep(KEY_CACHE_SECONDS + 0.2)  # past the window in which a cache is trusted unchecked
    sqlalchemy.event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        for n in range(20):  # a warm cache: sending seals with cached keys, reading none
            await store.append("conversation-ab", [NewEvent(_anna_says(f"Anna again {n}", 100 + n), "ann")])
        assert [s for s in statements if "personal_keys" in s] == []

        await erase_person(other, "ann", erased_by="dpo", reason="data_subject_request")
        deadline = time.monotonic() + KEY_CACHE_SECONDS + 5
        while "Anna again 0" in repr([e.payload for e in await store.read_stream("conversation-ab")]):
            assert time.monotonic() < deadline, "this process still opens Anna's destroyed key"
            await asyncio.sleep(0.1)
        # What she writes after the erasure is sealed under a new key, readable again.
        await store.append("conversation-ab", [NewEvent(_anna_says("Anna after the erasure", 200), "ann")])
        texts = [e.payload.get("text") for e in await store.read_stream("conversation-ab")]
        assert "Anna after the erasure" in texts and "Anna again 19" not in texts
    finally:
        sqlalchemy.event.remove(store.engine.sync_engine, "before_cursor_execute", record)
        await other.close()


def _anna_says(text: str, seq: int) -> MessageSent:
    return MessageSent(
        conversation_id="ab", message_id=f"m-{seq}", seq=seq, sender_id="ann", client_msg_id=f"c-{seq}", text=text
    )


async def test_a_batch_from_many_new_members_creates_their_keys_in_one_transaction(
    env: tuple[SqlEventStore, AsyncEngine],
) -> None:
    """A busy group's first batch: thirty members' first messages, sealed at once. Each member gets a
    key of their own, made in one write transaction (not thirty), each message opens again, and one
    member's erasure leaves the others readable."""
    store, _ = env
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    members = [f"member-{i}" for i in range(30)]
    events = [
        NewEvent(
            MessageSent(
                conversation_id="crowd",
                message_id=f"crowd-{i}",
                seq=i + 1,
                sender_id=m,
                client_msg_id=f"c-{i}",
                text=f"first words of {m}",
            ),
            m,
        )
        for i, m in enumerate(members)
    ]
    sqlalchemy.event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        await store.append("conversation-crowd", events)
    finally:
        sqlalchemy.event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    assert len([s for s in statements if s.lstrip().upper().startswith("INSERT INTO PERSONAL_KEYS")]) == 1
    async with store.engine.connect() as conn:
        scoped = (await conn.execute(text("SELECT subject_id FROM personal_keys WHERE scope = 'crowd'"))).all()
    assert sorted(r[0] for r in scoped) == sorted(members)
    texts = [e.payload["text"] for e in await store.read_stream("conversation-crowd")]
    assert texts == [f"first words of {m}" for m in members]

    await erase_person(store, "member-3", erased_by="dpo", reason="data_subject_request")
    texts = [e.payload["text"] for e in await store.read_stream("conversation-crowd")]
    assert texts[3] != "first words of member-3"
    assert texts[:3] + texts[4:] == [f"first words of {m}" for m in members if m != "member-3"]


async def test_concurrent_first_messages_share_their_key_transactions(
    env: tuple[SqlEventStore, AsyncEngine],
) -> None:
    """Forty people write their first message, each in a conversation of their own, at once (after a
    restart every cache is cold the same way): their keys are read and created together, in far
    fewer transactions than sends, and every message opens again."""
    store, _ = env
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def first_words(i: int) -> NewEvent:
        return NewEvent(
            MessageSent(
                conversation_id=f"solo-{i}",
                message_id=f"solo-{i}",
                seq=1,
                sender_id=f"p{i}",
                client_msg_id="c-1",
                text=f"hello from p{i}",
            ),
            f"p{i}",
        )

    sqlalchemy.event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    try:
        await asyncio.gather(*(store.append(f"conversation-solo-{i}", [first_words(i)]) for i in range(40)))
    finally:
        sqlalchemy.event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO PERSONAL_KEYS")]
    assert 1 <= len(inserts) <= 4, len(inserts)
    for i in range(40):
        [e] = await store.read_stream(f"conversation-solo-{i}")
        assert e.payload["text"] == f"hello from p{i}"
