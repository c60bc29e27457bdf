"""Finding things through HTTP: messages linking one business object across conversations (minus
those the caller is not in), full-text search with Russian word forms, the user directory."""

from __future__ import annotations

import asyncio
from typing import Any

import chat_support
import pytest
from chat_support import ChatStack

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats, stack = chat_support.embedded_nats, chat_support.stack  # the fixtures

TENDER = {"kind": "tender", "id": "T-2026-17", "title": "Supply of pumps"}


async def test_object_links_are_found_across_conversations_the_caller_is_in(stack: ChatStack) -> None:
    sales = await stack.conversation("anna", "group", ["boris"], title="sales")
    legal = await stack.conversation("anna", "group", ["vera"], title="legal")
    secret = await stack.conversation("boris", "group", ["vera"], title="board")
    for conversation_id, user in ((sales, "anna"), (legal, "vera"), (secret, "boris")):
        await stack.send(user, conversation_id, f"about the tender in {conversation_id}", links=[TENDER])
    await stack.send("anna", sales, "unrelated")
    path = f"/v1/objects/{TENDER['kind']}/{TENDER['id']}/messages"
    found = await _eventually(stack, "anna", path, lambda hits: len(hits) == 2)
    assert {m["conversation_id"] for m in found} == {sales, legal}
    assert found[0]["links"] == [TENDER]
    assert len((await stack.call("GET", path, "vera")).json()) <= 2


async def test_search_finds_russian_word_forms_and_only_visible_messages(stack: ChatStack) -> None:
    c = await stack.conversation("olga", "direct", ["petr"])
    other = await stack.conversation("ivan", "direct", ["sergei"])
    await stack.send("olga", c, "Подписали договор поставки")
    await stack.send("ivan", other, "Наш договор тоже готов")
    await stack.send("olga", c, "nothing here")
    hits = (await stack.call("GET", "/v1/search", "olga", params={"q": "договора"})).json()
    assert [h["text"] for h in hits] == ["Подписали договор поставки"]
    assert "<mark>" in hits[0]["highlight"]
    scoped = await stack.call("GET", "/v1/search", "olga", params={"q": "договор", "conversation_id": other})
    assert scoped.json() == []
    assert (await stack.call("GET", "/v1/search", "olga")).status_code == 422


async def test_the_directory_finds_people_by_name(stack: ChatStack) -> None:
    await stack.http.get("/v1/unread", headers=stack.headers("u-kat", "Екатерина Смирнова"))
    await stack.http.get("/v1/unread", headers=stack.headers("u-kir", "Kirill Orlov"))
    found = await _eventually(stack, "u-kir", "/v1/users?q=смирн", lambda users: len(users) == 1)
    assert found[0]["user_id"] == "u-kat" and found[0]["name"] == "Екатерина Смирнова"
    mine = (await stack.call("GET", "/v1/users", "u-kir", params={"q": "orlov"})).json()
    assert [u["user_id"] for u in mine] == ["u-kir"]


async def _eventually(chat: ChatStack, user: str, path: str, ok: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await chat.call("GET", path, user)
        assert r.status_code == 200, r.text
        if ok(r.json()) or asyncio.get_running_loop().time() > deadline:
            assert ok(r.json()), r.json()
            return r.json()
        await asyncio.sleep(0.02)
