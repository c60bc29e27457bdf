"""The conversation's decisions and state, without a store: inputs → events or a domain error."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from services.gateway.commands import domain
from services.gateway.commands.cache import LruCache
from services.gateway.commands.inputs import (
    AttachmentInput,
    LinkInput,
    check_attachments,
    check_client_msg_id,
    check_links,
    check_members,
    check_seq,
    check_text,
)
from services.gateway.commands.state import ConversationState, Undo, apply
from services.gateway.errors import Conflict, Invalid, NotAllowed, NotFound, TooLarge
from shared.events.base import Event
from shared.events.conversation import Delivered, MemberRemoved, MessageSent, Read
from shared.events.ids import deterministic_id, message_event_id

AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SHA = "a" * 64


def fold(state: ConversationState, events: Sequence[Event]) -> ConversationState:
    for event in events:
        apply(state, event, at=AT, position=1)
    return state


def group(*members: str) -> ConversationState:
    started = domain.start(members[0], "group", members, "Team", "", None)
    return fold(ConversationState(started.conversation_id), [started])


def send(state: ConversationState, sender: str, client_id: str, text: str = "hi") -> None:
    fold(state, domain.send_message(state, sender, client_id, text, (), (), None))


def test_direct_conversation_id_is_the_same_for_the_pair_in_either_order() -> None:
    a = domain.start("alice", "direct", check_members("alice", "direct", ["bob"]), "", "", None)
    b = domain.start("bob", "direct", check_members("bob", "direct", ["alice", "bob"]), "", "", None)
    assert a.conversation_id == b.conversation_id == str(deterministic_id("direct", "alice", "bob"))
    assert domain.event_id(a) == domain.event_id(b)


@pytest.mark.parametrize("members", [[], ["alice"], ["bob", "carol"], ["bob", "bob", "carol"]])
def test_direct_needs_exactly_two_users_with_the_caller(members: list[str]) -> None:
    with pytest.raises(Invalid) as e:
        check_members("alice", "direct", members)
    assert e.value.field == "members"


@pytest.mark.parametrize("member", ["", "   ", "x" * 201, "a\x00b", 5])
def test_member_ids_must_be_usable_ids(member: object) -> None:
    with pytest.raises(Invalid) as e:
        check_members("alice", "group", ["bob", member])  # type: ignore[list-item]
    assert e.value.field == "members[1]"


def test_group_members_are_deduplicated_with_the_caller_first() -> None:
    assert check_members("alice", "group", ["bob", "alice", "bob"]) == ("alice", "bob")


def test_unknown_kind_and_titled_direct_are_invalid() -> None:
    with pytest.raises(Invalid):
        domain.start("alice", "channel", ("alice", "bob"), "", "", None)
    with pytest.raises(Invalid):
        domain.start("alice", "direct", ("alice", "bob"), "Title", "", None)


def test_messages_are_numbered_one_after_another() -> None:
    state = group("alice", "bob")
    for i in range(3):
        send(state, "alice" if i % 2 else "bob", f"c{i}")
    assert [m.seq for m in state.messages.values()] == [1, 2, 3]
    assert state.last_seq == 3


def test_a_retried_send_decides_nothing_and_keeps_the_original() -> None:
    state = group("alice", "bob")
    events = domain.send_message(state, "alice", "c1", "hi", (), (), None)
    assert domain.event_id(events[0]) == message_event_id(state.conversation_id, "alice", "c1")
    fold(state, events)
    assert domain.send_message(state, "alice", "c1", "hi again", (), (), None) == []
    assert state.sent[("alice", "c1")].seq == 1


def test_the_same_client_id_from_another_sender_is_another_message() -> None:
    state = group("alice", "bob")
    send(state, "alice", "c1")
    send(state, "bob", "c1")
    assert state.last_seq == 2


def test_non_members_and_former_members_cannot_send() -> None:
    state = group("alice", "bob")
    with pytest.raises(NotFound) as e:
        domain.send_message(state, "mallory", "c1", "hi", (), (), None)
    assert (e.value.what, e.value.id) == ("conversation", state.conversation_id)
    fold(state, domain.remove_member(state, "bob", "bob"))
    with pytest.raises(NotFound):
        domain.send_message(state, "bob", "c2", "hi", (), (), None)


def test_unknown_conversation_is_not_found() -> None:
    with pytest.raises(NotFound):
        domain.send_message(ConversationState("nope"), "alice", "c1", "hi", (), (), None)


def test_empty_message_and_unknown_reply_are_invalid() -> None:
    state = group("alice", "bob")
    with pytest.raises(Invalid) as e:
        domain.send_message(state, "alice", "c1", "  ", (), (), None)
    assert e.value.field == "text"
    with pytest.raises(Invalid) as e:
        domain.send_message(state, "alice", "c1", "hi", (), (), "not-a-message")
    assert e.value.field == "reply_to"


def test_reply_to_a_message_of_the_conversation() -> None:
    state = group("alice", "bob")
    send(state, "alice", "c1")
    first = state.sent[("alice", "c1")].message_id
    (event,) = domain.send_message(state, "bob", "c2", "re", (), (), first)
    assert isinstance(event, MessageSent) and event.reply_to == first


def test_only_the_author_edits_or_retracts_and_retracted_is_final() -> None:
    state = group("alice", "bob")
    send(state, "alice", "c1")
    message = state.sent[("alice", "c1")].message_id
    with pytest.raises(NotAllowed):
        domain.edit_message(state, "bob", message, "changed")
    with pytest.raises(NotAllowed):
        domain.retract_message(state, "bob", message)
    with pytest.raises(NotFound):
        domain.edit_message(state, "alice", "other", "changed")
    fold(state, domain.retract_message(state, "alice", message))
    assert domain.retract_message(state, "alice", message) == []
    with pytest.raises(Conflict):
        domain.edit_message(state, "alice", message, "changed")


def test_watermarks_are_monotonic_and_bounded_by_the_last_message() -> None:
    state = group("alice", "bob")
    for i in range(5):
        send(state, "alice", f"c{i}")
    with pytest.raises(Invalid) as e:
        domain.mark(state, "bob", "read", 6)
    assert e.value.field == "up_to_seq"
    fold(state, domain.mark(state, "bob", "read", 3))
    assert (state.watermarks["bob"].delivered, state.watermarks["bob"].read) == (3, 3)  # read implies delivered
    assert domain.mark(state, "bob", "read", 2) == []
    assert domain.mark(state, "bob", "delivered", 3) == []
    (delivered,) = domain.mark(state, "bob", "delivered", 5)
    assert isinstance(delivered, Delivered)


def test_sending_advances_the_senders_own_read_watermark() -> None:
    state = group("alice", "bob")
    send(state, "alice", "c1")
    assert domain.mark(state, "alice", "read", 1) == []


def test_watermark_event_ids_are_deterministic() -> None:
    state = group("alice", "bob")
    send(state, "alice", "c1")
    (first,) = domain.mark(state, "bob", "read", 1)
    (again,) = domain.mark(state, "bob", "read", 1)
    assert isinstance(first, Read) and domain.event_id(first) == domain.event_id(again)


def test_group_only_operations_on_a_direct_conversation_are_invalid() -> None:
    started = domain.start("alice", "direct", ("alice", "bob"), "", "", None)
    state = fold(ConversationState(started.conversation_id), [started])
    for decide in (
        lambda: domain.add_member(state, "alice", "carol"),
        lambda: domain.remove_member(state, "alice", "alice"),
        lambda: domain.change_details(state, "alice", "New", None, None),
    ):
        with pytest.raises(Invalid):
            decide()


def test_leaving_removing_and_adding_members() -> None:
    state = group("alice", "bob", "carol")
    with pytest.raises(NotAllowed):
        domain.remove_member(state, "bob", "carol")
    (removed,) = domain.remove_member(state, "alice", "carol")
    assert isinstance(removed, MemberRemoved) and removed.reason == "removed"
    (left,) = domain.remove_member(state, "bob", "bob")
    assert isinstance(left, MemberRemoved) and left.reason == "left"
    assert domain.remove_member(state, "bob", "carol", moderator=True)
    assert domain.add_member(state, "alice", "bob") == []
    fold(state, domain.add_member(state, "alice", "dave"))
    assert list(state.members) == ["alice", "bob", "carol", "dave"]
    with pytest.raises(NotFound):
        domain.remove_member(state, "alice", "zed")


def test_details_change_only_what_differs() -> None:
    state = group("alice", "bob")
    assert domain.change_details(state, "alice", "Team", None, None) == []
    fold(state, domain.change_details(state, "alice", "Deal 42", None, "#12ab34"))
    assert (state.title, state.avatar_color) == ("Deal 42", "#12ab34")
    with pytest.raises(Invalid):
        domain.change_details(state, "alice", None, None, None)


def test_text_limits_and_client_ids() -> None:
    with pytest.raises(TooLarge) as e:
        check_text("text", "x" * 11, 10)
    assert (e.value.limit, e.value.size) == (10, 11)
    for bad in ("", "x" * 65, "a\x00"):
        with pytest.raises(Invalid):
            check_client_msg_id(bad)
    for bad_seq in (-1, True, "3", 1.0):
        with pytest.raises(Invalid):
            check_seq("up_to_seq", bad_seq)


def test_attachments_and_links_are_checked_field_by_field() -> None:
    good = AttachmentInput("f1", "offer.pdf", "application/pdf", 10, SHA)
    assert check_attachments([good])[0].file_id == "f1"
    with pytest.raises(Invalid) as e:
        check_attachments([AttachmentInput("f1", "x", "pdf", 10, SHA)])
    assert e.value.field == "attachments[0].mime"
    with pytest.raises(Invalid) as e:
        check_attachments([good, good])
    assert e.value.field == "attachments"
    with pytest.raises(Invalid) as e:
        check_attachments([AttachmentInput("f1", "x", "application/pdf", True, SHA)])  # type: ignore[arg-type]
    assert e.value.field == "attachments[0].size"
    assert check_links([LinkInput("tender", "T-1", "Notice 1")])[0].kind == "tender"
    with pytest.raises(Invalid) as e:
        check_links([LinkInput("invoice", "I-1", "x")])
    assert e.value.field == "links[0].kind"
    with pytest.raises(TooLarge):
        check_links([LinkInput("deal", str(i), "x") for i in range(21)])


def test_lru_cache_keeps_the_most_recently_used() -> None:
    cache: LruCache[str, int] = LruCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("b"), cache.get("a"), cache.get("c"), len(cache)) == (None, 1, 3, 2)


def test_undo_puts_back_exactly_what_a_batch_changed() -> None:
    state = group("alice", "bob", "carol")
    send(state, "alice", "c1")
    send(state, "bob", "c2")
    before = copy.deepcopy(state)
    undo = Undo(state)
    first = state.sent[("alice", "c1")].message_id
    batch = [
        *domain.send_message(state, "carol", "c3", "new", (), (), first),
        *domain.retract_message(state, "alice", first),
        *domain.mark(state, "bob", "read", 2),
        *domain.add_member(state, "alice", "dave"),
        *domain.remove_member(state, "carol", "carol"),
        *domain.change_details(state, "alice", "Renamed", "About", "#000000"),
    ]
    for event in batch:
        undo.apply(state, event, at=AT)
    assert state.last_seq == 3 and "dave" in state.members and state.messages[first].retracted
    undo.restore(state)
    assert state == before


def test_undo_of_a_start_leaves_an_empty_state() -> None:
    started = domain.start("alice", "group", ("alice", "bob"), "T", "", None)
    state = ConversationState(started.conversation_id)
    undo = Undo(state)
    undo.apply(state, started, at=AT)
    assert state.exists
    undo.restore(state)
    assert state == ConversationState(started.conversation_id)
