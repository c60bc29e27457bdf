"""Delivered on fetch, on SQLite and PostgreSQL: a `GET …/messages` page that returns another member's
messages advances the reader's Delivered watermark (never backwards) and the sender gets the tick."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import chat_support
import pytest
from realtime_support import RealtimeStack, realtime_stack

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats = chat_support.embedded_nats


async def _page_until(rt: RealtimeStack, user: str, c: str, last_seq: int, query: str = "") -> list[dict[str, Any]]:
    """Fetch as `user` until the page reaches `last_seq` (the read model follows the store shortly)."""
    for _ in range(500):
        page: list[dict[str, Any]] = (await rt.call("GET", f"/v1/conversations/{c}/messages{query}", user)).json()
        if page and page[-1]["seq"] >= last_seq:
            return page
        await asyncio.sleep(0.02)
    raise AssertionError(f"{user} never saw seq {last_seq}")


async def _delivered_marks(rt: RealtimeStack, c: str, user: str) -> list[int]:
    events = await rt.apps[0].state.store.read_stream(f"conversation-{c}")
    return [e.payload["up_to_seq"] for e in events if e.type == "Delivered" and e.payload["user_id"] == user]


async def test_a_fetch_marks_delivered_and_the_sender_gets_the_tick(
    embedded_nats: str, tmp_path: Path, database_url: str
) -> None:
    async with realtime_stack(tmp_path, embedded_nats, gateways=1, database_url=database_url) as rt:
        c = await rt.conversation("fay", "direct", ["gus"])
        async with rt.connect(0, "fay") as fay, rt.connect(0, "gus") as gus_phone:
            for n in range(3):
                await rt.send("fay", c, f"m{n}")
            page = await _page_until(rt, "gus", c, 3)  # gus fetches over HTTP (his web client, say)
            assert [m["seq"] for m in page] == [1, 2, 3]
            tick = await fay.next("receipt", user_id="gus", delivered_seq=3)
            assert (tick["conversation_id"], tick["read_seq"]) == (c, 0)
            assert (await gus_phone.next("receipt", user_id="gus", delivered_seq=3))["read_seq"] == 0

            older = await _page_until(rt, "gus", c, 1, "?before_seq=2")  # an older page: nothing moves back
            assert [m["seq"] for m in older] == [1]
            await rt.send("fay", c, "m3")
            await _page_until(rt, "gus", c, 4, "?after_seq=3")
            assert (await fay.next("receipt", user_id="gus", delivered_seq=4))["read_seq"] == 0
            await rt.send("gus", c, "gus writes")
            await _page_until(rt, "gus", c, 5)
            await fay.next("message", conversation_id=c, seq=5)
        detail = (await rt.call("GET", f"/v1/conversations/{c}", "fay")).json()
        marks = await _delivered_marks(rt, c, "gus")
    assert marks == sorted(set(marks)) and marks[-1] == 4  # only forwards; coalesced; up to the last one fetched
    assert {m["user_id"]: m["delivered_seq"] for m in detail["members"]}["gus"] >= 4


async def test_a_stranger_fetching_gets_404_and_marks_nothing(embedded_nats: str, tmp_path: Path) -> None:
    async with realtime_stack(tmp_path, embedded_nats, gateways=1) as rt:
        c = await rt.conversation("hal", "direct", ["ida"])
        await rt.send("hal", c, "private")
        r = await rt.call("GET", f"/v1/conversations/{c}/messages", "jon")
        assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
        async with rt.connect(0, "hal") as hal:
            await _page_until(rt, "ida", c, 1)
            await hal.next("receipt", user_id="ida", delivered_seq=1)
        events = await rt.apps[0].state.store.read_stream(f"conversation-{c}")
    assert [(e.payload["user_id"], e.payload["up_to_seq"]) for e in events if e.type == "Delivered"] == [("ida", 1)]
