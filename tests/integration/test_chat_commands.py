"""The chat write side against the real store, on SQLite and on PostgreSQL.

A second ConversationService over a second store on the same database stands for a second gateway
process: its conflicts are resolved through the store's expected version, not the in-process lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from services.gateway.auth import Principal
from services.gateway.commands.directory import DirectoryService
from services.gateway.commands.inputs import AttachmentInput, LinkInput
from services.gateway.commands.service import ConversationService
from services.gateway.errors import Conflict, Invalid, NotAllowed, NotFound, TooLarge
from shared.events.conversation import MessageSent
from shared.events.envelope import RecordedEvent
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore

SENDERS = 8
MESSAGES_PER_SENDER = 200


def user(user_id: str, name: str | None = None, roles: Sequence[str] = ("user",)) -> Principal:
    return Principal(user_id, name or user_id.title(), frozenset(roles), None, ())


ALICE, BOB, CAROL = user("alice"), user("bob"), user("carol")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlEventStore]:
    await asyncio.to_thread(migrate, database_url)
    store = await SqlEventStore.open(database_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def other_store(database_url: str, store: SqlEventStore) -> AsyncIterator[SqlEventStore]:
    """A second store (own engine, own group-commit writer) on the same database: another process."""
    other = await SqlEventStore.open(database_url)
    try:
        yield other
    finally:
        await other.close()


async def stream(store: SqlEventStore, conversation_id: str) -> list[RecordedEvent]:
    return await store.read_stream(f"conversation-{conversation_id}")


async def sent_seqs(store: SqlEventStore, conversation_id: str) -> list[int]:
    return [e.event.seq for e in await stream(store, conversation_id) if isinstance(e.event, MessageSent)]


async def test_two_users_direct_conversation_flow(store: SqlEventStore) -> None:
    chat = ConversationService(store)
    started = await chat.start_conversation(ALICE, "direct", ["bob"])
    assert started.created and started.position > 0
    again = await chat.start_conversation(BOB, "direct", ["alice", "bob"])
    assert (again.conversation.conversation_id, again.created, again.position) == (
        started.conversation.conversation_id,
        False,
        0,
    )
    cid = started.conversation.conversation_id
    assert set(again.conversation.members) == {"alice", "bob"}

    first = await chat.send_message(ALICE, cid, "c1", "Привет, договор готов")
    reply = await chat.send_message(BOB, cid, "c1", "Спасибо", reply_to=first.message_id)
    assert (first.seq, reply.seq, first.duplicate) == (1, 2, False)
    assert reply.position > first.position > started.position

    read = await chat.mark_read(BOB, cid, 1)
    assert (read.read_seq, read.delivered_seq, read.changed) == (2, 2, False)  # sending read up to 2 already
    assert (await chat.mark_delivered(ALICE, cid, 2)).changed
    edited = await chat.edit_message(ALICE, cid, first.message_id, "Договор подписан")
    assert (edited.seq, edited.changed) == (1, True)
    with pytest.raises(NotAllowed):
        await chat.retract_message(BOB, cid, first.message_id)
    assert (await chat.retract_message(ALICE, cid, first.message_id)).changed
    with pytest.raises(Invalid):
        await chat.add_member(ALICE, cid, "carol")
    types = [e.type for e in await stream(store, cid)]
    assert types == [
        "ConversationStarted",
        "MessageSent",
        "MessageSent",
        "Delivered",
        "MessageEdited",
        "MessageRetracted",
    ]


async def test_fifty_member_group_flow_and_leaving(store: SqlEventStore) -> None:
    chat = ConversationService(store)
    people = [user(f"u{i:02}") for i in range(50)]
    group = await chat.start_conversation(people[0], "group", [p.user_id for p in people[1:]], title="Tender 7")
    cid = group.conversation.conversation_id
    assert len(group.conversation.members) == 50
    for i, person in enumerate(people):
        assert (await chat.send_message(person, cid, "hello", f"Hello from {i}")).seq == i + 1
    link = LinkInput("tender", "T-7", "Tender notice 7")
    file = AttachmentInput("f1", "spec.pdf", "application/pdf", 1234, "b" * 64)
    rich = await chat.send_message(people[3], cid, "rich", "see", attachments=[file], links=[link])
    assert rich.seq == 51
    await chat.edit_message(people[3], cid, rich.message_id, "see attached")
    await chat.retract_message(people[3], cid, rich.message_id)
    await chat.change_details(people[0], cid, title="Tender 7 (won)")

    leaver = people[7]
    left = await chat.remove_member(leaver, cid, leaver.user_id)
    assert left.changed
    with pytest.raises(NotFound):
        await chat.send_message(leaver, cid, "after", "still here?")
    with pytest.raises(NotFound):
        await chat.get_conversation(leaver, cid)
    with pytest.raises(NotFound):
        await chat.mark_read(leaver, cid, 51)
    view = await chat.get_conversation(people[1], cid)
    assert (view.title, len(view.members), view.last_seq) == ("Tender 7 (won)", 49, 51)
    assert (await chat.send_message(people[1], cid, "next", "on we go")).seq == 52


async def test_non_members_get_not_found_everywhere(store: SqlEventStore) -> None:
    chat = ConversationService(store)
    cid = (await chat.start_conversation(ALICE, "group", ["bob"])).conversation.conversation_id
    message = await chat.send_message(ALICE, cid, "c1", "hi")
    before = len(await stream(store, cid))
    attempts: list[Any] = [
        chat.get_conversation(CAROL, cid),
        chat.send_message(CAROL, cid, "c1", "hi"),
        chat.edit_message(CAROL, cid, message.message_id, "x"),
        chat.retract_message(CAROL, cid, message.message_id),
        chat.mark_read(CAROL, cid, 1),
        chat.mark_delivered(CAROL, cid, 1),
        chat.add_member(CAROL, cid, "carol"),
        chat.remove_member(CAROL, cid, "bob"),
        chat.change_details(CAROL, cid, title="mine"),
        chat.send_message(ALICE, "no-such-conversation", "c1", "hi"),
    ]
    for attempt in attempts:
        with pytest.raises(NotFound) as e:
            await attempt
        assert e.value.what == "conversation"
    assert len(await stream(store, cid)) == before


async def test_bad_input_appends_nothing(store: SqlEventStore) -> None:
    chat = ConversationService(store, max_text_length=100)
    cid = (await chat.start_conversation(ALICE, "group", ["bob"])).conversation.conversation_id
    await chat.send_message(ALICE, cid, "c1", "hi")
    before = len(await stream(store, cid))
    with pytest.raises(TooLarge):
        await chat.send_message(ALICE, cid, "c2", "x" * 101)
    with pytest.raises(Invalid):
        await chat.send_message(ALICE, cid, "", "hi")
    with pytest.raises(Invalid):
        await chat.send_message(ALICE, cid, "c3", "hi", reply_to="not-here")
    with pytest.raises(Invalid) as e:
        await chat.mark_read(BOB, cid, 2)
    assert e.value.field == "up_to_seq"
    assert len(await stream(store, cid)) == before


async def test_watermarks_are_monotonic(store: SqlEventStore) -> None:
    chat = ConversationService(store)
    cid = (await chat.start_conversation(ALICE, "group", ["bob"])).conversation.conversation_id
    for i in range(5):
        await chat.send_message(ALICE, cid, f"c{i}", f"m{i}")
    assert (await chat.mark_read(BOB, cid, 4)).changed
    version = len(await stream(store, cid))
    lower = await chat.mark_read(BOB, cid, 2)
    same_delivered = await chat.mark_delivered(BOB, cid, 4)
    assert (lower.changed, lower.position, lower.read_seq, same_delivered.changed) == (False, 0, 4, False)
    assert len(await stream(store, cid)) == version
    assert (await chat.mark_delivered(BOB, cid, 5)).delivered_seq == 5


async def test_eight_concurrent_senders_get_contiguous_seqs(store: SqlEventStore) -> None:
    chat = ConversationService(store)
    assert await concurrent_senders([chat], store) == 0
    assert chat.executor.conflicts == 0  # one process: the stream lock leaves nothing to conflict


async def test_two_processes_of_concurrent_senders_get_contiguous_seqs(
    store: SqlEventStore, other_store: SqlEventStore
) -> None:
    """Conflicts between the processes are retried by the service, and past its budget by the client
    (as an HTTP client retries a 409 with the same client_msg_id): nothing is lost or doubled."""
    services = [ConversationService(store), ConversationService(other_store)]
    client_retries = await concurrent_senders(services, store)
    assert services[0].executor.conflicts + services[1].executor.conflicts > 0
    print(f"conflicts {[s.executor.conflicts for s in services]}, client retries {client_retries}")


async def concurrent_senders(services: list[ConversationService], store: SqlEventStore) -> int:
    """8 senders × 200 messages into one group; the client retries (same client id) on Conflict."""
    senders = [user(f"s{i}") for i in range(SENDERS)]
    group = await services[0].start_conversation(senders[0], "group", [s.user_id for s in senders[1:]])
    cid = group.conversation.conversation_id
    client_retries = 0

    async def send(chat: ConversationService, sender: Principal, n: int) -> int:
        nonlocal client_retries
        while True:
            try:
                return (await chat.send_message(sender, cid, f"m{n}", f"{sender.user_id}/{n}")).seq
            except Conflict:
                client_retries += 1
                await asyncio.sleep(0.01)

    async def run(index: int) -> list[int]:
        chat = services[index % len(services)]
        return [await send(chat, senders[index], n) for n in range(MESSAGES_PER_SENDER)]

    answered = [seq for seqs in await asyncio.gather(*(run(i) for i in range(SENDERS))) for seq in seqs]
    total = SENDERS * MESSAGES_PER_SENDER
    assert sorted(answered) == list(range(1, total + 1))
    assert await sent_seqs(store, cid) == list(range(1, total + 1))
    return client_retries


async def test_a_retried_send_answers_the_original(store: SqlEventStore, other_store: SqlEventStore) -> None:
    chat, elsewhere = ConversationService(store), ConversationService(other_store)
    cid = (await chat.start_conversation(ALICE, "group", ["bob"])).conversation.conversation_id
    first = await chat.send_message(ALICE, cid, "once", "hello")
    retry = await chat.send_message(ALICE, cid, "once", "hello")
    assert (retry.message_id, retry.seq, retry.sent_at, retry.position, retry.duplicate) == (
        first.message_id,
        first.seq,
        first.sent_at,
        first.position,
        True,
    )
    from_other_process = await elsewhere.send_message(ALICE, cid, "once", "hello")
    assert (from_other_process.message_id, from_other_process.seq) == (first.message_id, first.seq)
    assert await sent_seqs(store, cid) == [1]


async def test_concurrent_retries_make_one_message(store: SqlEventStore, other_store: SqlEventStore) -> None:
    services = [ConversationService(store), ConversationService(other_store)]
    cid = (await services[0].start_conversation(ALICE, "group", ["bob"])).conversation.conversation_id
    await services[1].send_message(BOB, cid, "warm", "warm the other cache")
    answers = await asyncio.gather(*(services[i % 2].send_message(ALICE, cid, "same", "hello") for i in range(10)))
    assert len({(a.message_id, a.seq) for a in answers}) == 1
    assert sum(not a.duplicate for a in answers) >= 1
    assert await sent_seqs(store, cid) == [1, 2]


async def test_a_stale_cache_is_refreshed_before_answering_an_error(
    store: SqlEventStore, other_store: SqlEventStore
) -> None:
    here, there = ConversationService(store), ConversationService(other_store)
    cid = (await here.start_conversation(ALICE, "group", ["bob"])).conversation.conversation_id
    await there.send_message(BOB, cid, "c1", "hi")  # `there` caches the group without carol
    await here.add_member(ALICE, cid, "carol")
    assert (await there.send_message(CAROL, cid, "c1", "I was added elsewhere")).seq == 2
    await here.remove_member(ALICE, cid, "carol")
    with pytest.raises(NotFound):
        await there.send_message(CAROL, cid, "c2", "still here?")  # conflicts, refreshes, then NotFound


async def test_direct_conversation_is_unique_per_pair_under_concurrency(
    store: SqlEventStore, other_store: SqlEventStore
) -> None:
    services = [ConversationService(store), ConversationService(other_store)]
    answers = await asyncio.gather(
        *(services[i % 2].start_conversation(ALICE if i % 3 else BOB, "direct", ["alice", "bob"]) for i in range(6))
    )
    assert len({a.conversation.conversation_id for a in answers}) == 1
    assert [e.type for e in await stream(store, answers[0].conversation.conversation_id)] == ["ConversationStarted"]


async def test_the_hot_path_does_not_read_and_the_cache_stays_bounded(store: SqlEventStore) -> None:
    reads = 0
    read_stream = store.read_stream

    async def counting(*args: Any, **kwargs: Any) -> list[RecordedEvent]:
        nonlocal reads
        reads += 1
        return await read_stream(*args, **kwargs)

    store.read_stream = counting  # type: ignore[method-assign]
    chat = ConversationService(store, cache_size=3)
    groups = [(await chat.start_conversation(ALICE, "group", ["bob"])).conversation.conversation_id for _ in range(5)]
    assert len(chat.executor.cache) == 3 and reads == 0
    for n in range(10):
        await chat.send_message(ALICE, groups[-1], f"c{n}", "hi")
    assert reads == 0
    assert (await chat.send_message(BOB, groups[0], "c1", "evicted, so loaded again")).seq == 1
    assert reads == 1 and len(chat.executor.cache) == 3


async def test_directory_records_new_and_changed_users_once(store: SqlEventStore, other_store: SqlEventStore) -> None:
    directory, elsewhere = DirectoryService(store), DirectoryService(other_store)
    alice = user("alice", "Alice")
    positions = await asyncio.gather(directory.observe(alice), elsewhere.observe(alice), directory.observe(alice))
    assert any(positions)
    assert await directory.observe(alice) == 0
    renamed = user("alice", "Alice Smith", roles=("user", "agent"))
    assert await directory.observe(renamed) > 0
    assert await elsewhere.observe(renamed) == 0  # reads what the other process wrote, appends nothing
    assert await directory.observe(alice) > 0  # back to the first name: a new change, not a repeat
    events = await store.read_stream("user-alice")
    assert [e.type for e in events] == ["UserSeen", "UserProfileChanged", "UserProfileChanged"]
    assert [e.payload["name"] for e in events] == ["Alice", "Alice Smith", "Alice"]


async def test_a_caller_going_away_does_not_stop_the_others(store: SqlEventStore) -> None:
    chat = ConversationService(store)
    cid = (await chat.start_conversation(ALICE, "group", ["bob"])).conversation.conversation_id
    sends = [asyncio.create_task(chat.send_message(BOB, cid, f"c{n}", "hi")) for n in range(10)]
    await asyncio.sleep(0)
    sends[3].cancel()
    done = [await s for i, s in enumerate(sends) if i != 3]
    later = await chat.send_message(ALICE, cid, "later", "still working")
    seqs = await sent_seqs(store, cid)
    assert seqs == list(range(1, len(seqs) + 1)) and later.seq == seqs[-1]
    assert {d.seq for d in done} <= set(seqs)
