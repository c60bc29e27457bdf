"""Hostile events published straight to the broker, past the relay, with the projections and delivery
workers running: each is dead-lettered by both workers with its reason and counted in
`ledgerline_worker_dead_lettered_total`; the good events that follow on the same partition are still
projected and delivered; no worker stops."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import chat_support
import orjson
import pytest

from fuzz.worker_support import KINDS, WorkerStack, worker_stack
from shared.events.cloudevents import to_cloudevent
from shared.events.partition import partition_of

pytestmark = pytest.mark.asyncio(loop_scope="module")
embedded_nats = chat_support.embedded_nats  # the fixture
DEAD = "ledgerline_worker_dead_lettered_total"


async def eventually(check: Any, what: str, timeout: float = 30.0) -> None:
    """Wait for the asynchronous pipeline (relay → broker → worker); fails naming `what`."""
    for _ in range(int(timeout / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    assert await check(), what


def hostile(template: dict[str, Any]) -> dict[str, tuple[str, bytes]]:
    """name → (subject type, body). `template` is a real MessageSent CloudEvent, so that each body
    differs from a good event in the one way its name says."""

    def variant(**changes: Any) -> bytes:
        ce = template | {"id": str(uuid.uuid4()), "position": template["position"] + 1_000_000} | changes
        return orjson.dumps(ce)

    data = dict(template["data"])
    return {
        "garbage bytes": ("MessageSent", b"\x00\xff not json at all {"),
        "json, not an object": ("MessageSent", b"[1, 2, 3]"),
        "unknown type": ("NoSuchEvent", variant(type="ledgerline.NoSuchEvent.v1")),
        "unknown version": ("MessageSent", variant(type="ledgerline.MessageSent.v99")),
        "payload breaks the schema": ("MessageSent", variant(data=data | {"seq": "first", "text": 5})),
        "payload missing fields": ("MessageSent", variant(data={"conversation_id": data["conversation_id"]})),
    }


async def test_bad_events_are_dead_lettered_and_the_good_ones_after_them_handled(
    embedded_nats: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ledgerline.db'}"
    async with worker_stack(url, embedded_nats, tmp_path) as s:
        await run_hostile_events(s)


@pytest.mark.postgres
async def test_bad_events_are_dead_lettered_on_postgres(pg_url: str, tmp_path: Path) -> None:
    chat_support.require_server("NATS", "127.0.0.1", 4222)
    async with worker_stack(pg_url, chat_support.NATS_URL, tmp_path) as s:
        await run_hostile_events(s)


async def run_hostile_events(s: WorkerStack) -> None:
    chat = s.chat
    c = await chat.conversation("alice", "direct", ["bob"])
    first = await chat.send("alice", c, "before the storm")
    recorded = await chat.app.state.store.read_all(after_position=0, limit=1000)  # type: ignore[attr-defined]
    sent = next(e for e in recorded if e.type == "MessageSent" and e.payload.get("message_id") == first["message_id"])
    partition = partition_of(sent.stream_id, s.broker.partitions)
    await eventually(lambda: handled_all(s, len(recorded)), "the first events were handled")
    handled_before = {k: s.sample(k, "ledgerline_worker_events_handled_total") for k in KINDS}

    bad = hostile(to_cloudevent(sent, "gateway", s.broker.partitions))
    for type_, body in bad.values():
        await s.publish_raw(type_, partition, body)
    after = await chat.send("alice", c, "after the storm")

    async def all_dead() -> bool:
        return all(s.sample(k, DEAD) >= len(bad) for k in KINDS)

    await eventually(all_dead, "every hostile event dead-lettered by both workers")
    for kind in KINDS:
        letters = await s.broker.dead_letters(kind)
        assert len(letters) == len(bad), (kind, [(d.type, d.error) for d in letters])
        assert all(d.error for d in letters), kind
        reasons = " | ".join(d.error for d in letters)
        for needle in ("undecodable", "NoSuchEvent", "99", "seq"):
            assert needle in reasons, (kind, needle, reasons)
        assert s.sample(kind, DEAD) == len(bad)

    async def seen_after() -> bool:
        r = await chat.call("GET", f"/v1/conversations/{c}/messages", "bob")
        return r.status_code == 200 and any(m["message_id"] == after["message_id"] for m in r.json())

    await eventually(seen_after, "the good message after the hostile ones reached the read model")

    async def every_kind_moved_on() -> bool:  # the read model is the projections worker's; delivery may trail
        return all(s.sample(k, "ledgerline_worker_events_handled_total") > handled_before[k] for k in KINDS)

    await eventually(every_kind_moved_on, "both workers handled the good events after the hostile ones")
    messages = (await chat.call("GET", f"/v1/conversations/{c}/messages", "bob")).json()
    assert [m["text"] for m in messages] == ["before the storm", "after the storm"]


async def handled_all(s: WorkerStack, count: int) -> bool:
    return all(s.sample(k, "ledgerline_worker_events_handled_total") >= count for k in KINDS)
