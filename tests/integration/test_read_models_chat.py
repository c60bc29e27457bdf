"""The chat read models on SQLite and PostgreSQL: real catalogue events appended through the store,
read back with read_all, applied by the projector, and queried as the gateway queries them."""

from __future__ import annotations

import test_read_models_support as support
from test_read_models_support import Env, dump

from services.projections import queries
from shared.events.conversation import ObjectLink

env = support.env  # the fixture, shared with the other test_read_models_* modules


async def test_direct_conversation_list_unread_and_statuses(env: Env) -> None:
    await env.start("d1", "direct", ["alice", "bob"])
    for body in ("one", "two", "x" * 300):
        await env.send("d1", "alice", body)
    await env.delivered("d1", "bob", 2)
    await env.read("d1", "bob", 1)
    await env.project()
    async with env.engine.connect() as conn:
        [mine] = await queries.conversations(conn, "alice")
        [theirs] = await queries.conversations(conn, "bob")
        page = await queries.messages(conn, "alice", "d1")
        bobs_view = await queries.messages(conn, "bob", "d1")
        unread = await queries.unread(conn, "bob")
    assert (mine.unread_count, theirs.unread_count, mine.last_seq) == (0, 2, 3)
    assert mine.last_message is not None and mine.last_message.text == "x" * 140
    assert mine.last_message.sender_id == "alice"
    assert page is not None and [m.status for m in page] == ["read", "delivered", "sent"]
    assert page[0].delivered_count is None  # counts are for groups
    assert bobs_view is not None and all(m.status is None for m in bobs_view)
    assert unread.total == 2 and unread.conversations == {"d1": 2}


async def test_group_of_fifty_counts_and_read_by_all(env: Env) -> None:
    users = [f"u{i:02}" for i in range(50)]
    await env.start("g1", "group", users, title="Fifty")
    for n in range(5):
        await env.send("g1", "u00", f"message {n}")
    for u in users[1:31]:
        await env.read("g1", u, 5)
    for u in users[31:41]:
        await env.delivered("g1", u, 5)
    await env.project()
    async with env.engine.connect() as conn:
        page = await queries.messages(conn, "u00", "g1", after_seq=4)
        unread = await queries.unread(conn, "u45")
        detail = await queries.conversation(conn, "u45", "g1")
    assert page is not None and len(page) == 1
    assert (page[0].status, page[0].delivered_count, page[0].read_count) == ("sent", 40, 30)
    assert unread.total == 5
    assert detail is not None and len(detail.members) == 50 and detail.title == "Fifty"

    for u in users[31:]:
        await env.read("g1", u, 5)
    await env.project()
    async with env.engine.connect() as conn:
        page = await queries.messages(conn, "u00", "g1", after_seq=4)
    assert page is not None and (page[0].status, page[0].delivered_count, page[0].read_count) == ("read", 49, 49)


async def test_the_last_message_preview_follows_sends_and_edits_of_the_last_message_only(env: Env) -> None:
    await env.start("p", "direct", ["alice", "bob"])
    await env.send("p", "alice", "first")
    await env.send("p", "bob", "second")
    await env.project()

    async def last() -> tuple[int, str, str]:
        async with env.engine.connect() as conn:
            [summary] = await queries.conversations(conn, "alice")
        assert summary.last_message is not None
        return summary.last_seq, summary.last_message.text, summary.last_message.sender_id

    assert await last() == (2, "second", "bob")
    await env.edit("p", 2, "second, edited", "bob")  # the last message, in a batch of its own
    await env.project()
    assert await last() == (2, "second, edited", "bob")
    await env.edit("p", 1, "first, edited", "alice")  # an older one: the preview stays
    await env.project()
    assert await last() == (2, "second, edited", "bob")
    await env.edit("p", 2, "second, again", "bob")  # an edit and a later message in one batch
    await env.send("p", "alice", "third")
    await env.project()
    assert await last() == (3, "third", "alice")


async def test_edit_and_retraction_remove_text_links_files_and_search_entry(env: Env) -> None:
    tender = ObjectLink(kind="tender", id="T-1", title="Tender 1")
    await env.start("c", "direct", ["alice", "bob"])
    await env.send("c", "alice", "draft contract", links=(tender,), files=("f1",))
    await env.edit("c", 1, "final contract", "alice")
    await env.project()
    async with env.engine.connect() as conn:
        [m] = await queries.messages(conn, "bob", "c") or []
        assert (m.text, m.edited_at is not None) == ("final contract", True)
        assert [h.seq for h in await queries.search(conn, "bob", "final")] == [1]
        assert await queries.file_visible(conn, "bob", "f1")
    await env.retract("c", 1, "alice")
    await env.project()
    async with env.engine.connect() as conn:
        [m] = await queries.messages(conn, "bob", "c") or []
        [summary] = await queries.conversations(conn, "bob")
        assert (m.retracted, m.text, m.attachments, m.links) == (True, "", [], [])
        assert summary.last_message is not None and summary.last_message.text == ""
        assert await queries.search(conn, "bob", "final") == []
        assert await queries.object_messages(conn, "bob", "tender", "T-1") == []
        assert not await queries.file_visible(conn, "bob", "f1")


async def test_a_former_member_sees_nothing_and_a_rejoined_one_sees_again(env: Env) -> None:
    await env.start("g", "group", ["a", "b", "c"])
    await env.send("g", "a", "before")
    await env.remove("g", "c")
    await env.send("g", "a", "after")
    await env.project()
    async with env.engine.connect() as conn:
        assert await queries.messages(conn, "c", "g") is None
        assert await queries.conversation(conn, "c", "g") is None
        assert await queries.conversations(conn, "c") == []
        assert (await queries.unread(conn, "c")).total == 0
        page = await queries.messages(conn, "a", "g")
        assert page is not None and page[-1].read_count == 0 and page[-1].delivered_count == 0  # b only
    await env.add("g", "c")
    await env.project()
    async with env.engine.connect() as conn:
        page = await queries.messages(conn, "c", "g")
    assert page is not None and [m.text for m in page] == ["before", "after"]


async def test_redelivered_batch_changes_nothing(env: Env) -> None:
    await env.start("g", "group", ["a", "b"])
    for n in range(10):
        await env.send("g", "a", f"m{n}")
    await env.read("g", "b", 4)
    await env.project()
    async with env.engine.connect() as conn:
        before = await dump(conn)
    await env.projector.apply(await env.store.read_all(0, 1000))  # the same events again
    async with env.engine.connect() as conn:
        assert await dump(conn) == before
        assert (await queries.unread(conn, "b")).total == 6


async def test_object_links_across_conversations_minus_the_one_the_caller_is_not_in(env: Env) -> None:
    tender = ObjectLink(kind="tender", id="44-FZ-123", title="Поставка бумаги")
    await env.start("c1", "direct", ["alice", "bob"])
    await env.start("c2", "group", ["alice", "carol"])
    await env.start("c3", "group", ["bob", "carol"])
    for conv, sender in (("c1", "bob"), ("c2", "carol"), ("c3", "carol")):
        await env.send(conv, sender, f"about the tender in {conv}", links=(tender,))
    await env.send("c1", "alice", "unrelated")
    await env.project()
    async with env.engine.connect() as conn:
        found = await queries.object_messages(conn, "alice", "tender", "44-FZ-123")
        everyone = await queries.object_messages(conn, "carol", "tender", "44-FZ-123")
    assert [m.conversation_id for m in found] == ["c2", "c1"]  # newest first; c3 is not alice's
    assert found[0].links == [{"kind": "tender", "id": "44-FZ-123", "title": "Поставка бумаги"}]
    assert [m.conversation_id for m in everyone] == ["c3", "c2"]


async def test_search_finds_russian_word_forms_newest_first_with_highlights(env: Env) -> None:
    await env.start("c", "group", ["alice", "bob"])
    await env.start("secret", "direct", ["carol", "dave"])
    await env.send("c", "alice", "Подписали договор <b>поставки</b>")
    await env.send("c", "bob", "Где копия договора?")
    await env.send("c", "bob", "Signed contracts are here")
    await env.send("secret", "carol", "договор тайный")
    await env.project()
    async with env.engine.connect() as conn:
        hits = await queries.search(conn, "alice", "договор")
        inflected = await queries.search(conn, "alice", "договора")
        english = await queries.search(conn, "alice", "contract")
        scoped = await queries.search(conn, "alice", "договор", conversation_id="secret")
    assert [h.seq for h in hits] == [2, 1]
    assert [h.seq for h in inflected] == [2, 1]
    assert [h.seq for h in english] == [3]
    assert scoped == []
    assert "<mark>договора</mark>" in hits[0].highlight
    assert "<mark>договор</mark>" in hits[1].highlight
    assert "<b>" not in hits[1].highlight  # message text never becomes markup (escaped, or dropped by PostgreSQL)


async def test_directory_finds_people_by_any_part_of_the_name(env: Env) -> None:
    await env.seen("u1", "Иван Петров")
    await env.seen("u2", "Мария Иванова")
    await env.seen("u3", "John Smith")
    await env.seen("u3", "John Smith-Jones", changed=True)
    await env.project()
    async with env.engine.connect() as conn:
        ivan = await queries.users(conn, "иван")
        jones = await queries.users(conn, "JONES")
        percent = await queries.users(conn, "%")
    assert [u.user_id for u in ivan] == ["u1", "u2"]
    assert [(u.user_id, u.name, u.roles) for u in jones] == [("u3", "John Smith-Jones", ["user"])]
    assert percent == []


async def test_checkpoints_advance_per_partition(env: Env) -> None:
    from shared.events.partition import partition_of

    await env.start("c", "direct", ["a", "b"])
    await env.seen("a", "A")
    await env.project()
    async with env.engine.connect() as conn:
        chat = await queries.checkpoint(conn, "chat", partition_of("conversation-c"))
        directory = await queries.checkpoint(conn, "directory", partition_of("user-a"))
    assert chat == 1 and directory == 2
