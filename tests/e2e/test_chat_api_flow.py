"""The chat flow through HTTP: two users, and a group of 50 (create, send, list, unread, receipts,
statuses, edit, retract, leave), on SQLite + embedded NATS and PostgreSQL + the machine's NATS."""

from __future__ import annotations

import asyncio

import chat_support
import pytest
from chat_support import ChatStack

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures


async def test_two_users_chat_from_first_message_to_retraction(stack: ChatStack) -> None:
    c = await stack.conversation("alice", "direct", ["bob"])
    again = await stack.call("POST", "/v1/conversations", "bob", json={"kind": "direct", "members": ["alice"]})
    assert again.status_code == 200 and again.json()["conversation_id"] == c
    first = await stack.send("alice", c, "Hello Bob")
    # Read-your-writes: the sender's list right after the send already shows it.
    mine = (await stack.call("GET", "/v1/conversations", "alice")).json()
    assert mine[0]["conversation_id"] == c and mine[0]["last_message"]["text"] == "Hello Bob"
    second = await stack.send("alice", c, "Are you there?")
    assert (first["seq"], second["seq"]) == (1, 2)
    await stack.send("bob", c, "warm-up")  # bob's own write: his reads now wait for the model
    unread = (await stack.call("GET", "/v1/unread", "bob")).json()
    assert unread == {"total": 0, "conversations": {}}  # sending read everything before it
    third = await stack.send("alice", c, "Third")
    await _eventually(stack, "bob", "/v1/unread", lambda body: body["total"] == 1)
    page = (await stack.call("GET", f"/v1/conversations/{c}/messages", "alice")).json()
    assert [m["seq"] for m in page] == [1, 2, 3, 4] and page[-1]["status"] == "sent"
    r = await stack.call("POST", f"/v1/conversations/{c}/delivered", "bob", json={"up_to_seq": 4})
    assert r.status_code == 204
    await _eventually(stack, "alice", f"/v1/conversations/{c}/messages", lambda p: p[-1]["status"] == "delivered")
    assert (await stack.call("POST", f"/v1/conversations/{c}/read", "bob", json={"up_to_seq": 4})).status_code == 204
    await _eventually(stack, "alice", f"/v1/conversations/{c}/messages", lambda p: p[-1]["status"] == "read")
    path = f"/v1/conversations/{c}/messages/{third['message_id']}"
    edited = await stack.call("PATCH", path, "alice", json={"text": "3rd"})
    assert edited.status_code == 200 and edited.json()["text"] == "3rd" and edited.json()["edited_at"]
    forbidden = await stack.call("DELETE", path, "bob")
    assert forbidden.status_code == 403 and forbidden.headers["content-type"] == "application/problem+json"
    gone = await stack.call("DELETE", path, "alice")
    assert gone.status_code == 204
    page = (await stack.call("GET", f"/v1/conversations/{c}/messages?after_seq=3", "alice")).json()
    assert page[0]["retracted"] is True and page[0]["text"] == ""
    detail = (await stack.call("GET", f"/v1/conversations/{c}", "bob")).json()
    assert {m["user_id"] for m in detail["members"]} == {"alice", "bob"} and detail["kind"] == "direct"


async def test_a_group_of_fifty_reads_counts_and_loses_a_leaver(stack: ChatStack) -> None:
    members = [f"u{n:02d}" for n in range(1, 50)]
    g = await stack.conversation("owner", "group", members, title="Tender 42", avatar_color="#11aa33")
    created = (await stack.call("GET", f"/v1/conversations/{g}", "owner")).json()
    assert len(created["members"]) == 50 and created["title"] == "Tender 42"
    for n in range(3):
        await stack.send("owner", g, f"news {n}")
    await _eventually(stack, "u07", "/v1/unread", lambda body: body["conversations"].get(g) == 3)
    listed = (await stack.call("GET", "/v1/conversations", "u07")).json()
    assert listed[0]["unread_count"] == 3 and listed[0]["last_seq"] == 3
    await asyncio.gather(
        *(stack.call("POST", f"/v1/conversations/{g}/read", u, json={"up_to_seq": 3}) for u in members[:10])
    )
    page = await _eventually(stack, "owner", f"/v1/conversations/{g}/messages", lambda p: p[-1]["read_count"] == 10)
    assert page[-1]["status"] == "delivered" or page[-1]["status"] == "sent"
    renamed = await stack.call("PATCH", f"/v1/conversations/{g}", "owner", json={"title": "Tender 42 (won)"})
    assert renamed.status_code == 200 and renamed.json()["title"] == "Tender 42 (won)"
    assert (await stack.call("DELETE", f"/v1/conversations/{g}/members/u49", "u49")).status_code == 204
    await stack.send("owner", g, "after u49 left")
    assert (await stack.call("GET", f"/v1/conversations/{g}/messages", "u49")).status_code == 404
    assert (await stack.call("GET", f"/v1/conversations/{g}", "u49")).status_code == 404
    assert all(c["conversation_id"] != g for c in (await stack.call("GET", "/v1/conversations", "u49")).json())
    added = await stack.call("POST", f"/v1/conversations/{g}/members", "owner", json={"user_id": "newcomer"})
    assert added.status_code == 201
    again = await stack.call("POST", f"/v1/conversations/{g}/members", "owner", json={"user_id": "newcomer"})
    assert again.status_code == 200


async def _eventually(chat: ChatStack, user: str, path: str, ok: object, timeout: float = 10.0) -> object:
    """Another user's write reaches this reader through the projection: poll, bounded."""
    assert callable(ok)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await chat.call("GET", path, user)
        assert r.status_code == 200, r.text
        if ok(r.json()) or asyncio.get_running_loop().time() > deadline:
            assert ok(r.json()), r.json()
            return r.json()
        await asyncio.sleep(0.02)
