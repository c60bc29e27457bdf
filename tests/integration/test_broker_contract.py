"""The broker contract, run against both real brokers (NATS JetStream and RabbitMQ) through the runtime.

Each test uses its own namespace (stream, subjects, exchanges, queues) and removes it at the end.
Leases live in a fresh SQLite file (one test repeats the sharing check on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import unique_suffix
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.broker.factory import connect_broker
from shared.broker.port import ConsumingBroker
from shared.broker.rabbit import RabbitBroker
from shared.broker.runtime import RetryPolicy, Worker, WorkerOptions
from shared.events.conversation import MessageSent, Read
from shared.events.envelope import RecordedEvent
from shared.metrics import MetricsRegistry
from shared.store.tables import metadata

KINDS = ("projections", "delivery", "tickets")
# Short timings keep the suite in seconds: lease ticks every 0.75 s, batches every 0.2 s at most.
FAST = WorkerOptions(
    batch_size=64,
    retry=RetryPolicy(max_deliver=3, backoff_base=0.02, backoff_max=0.1),
    ack_wait=5.0,
    lease_ttl=3.0,  # a tick must land within 75% of the TTL or partitions churn; 1 s was too tight on a loaded CI
    fetch_wait=0.2,
)


@pytest.fixture(params=["nats", "rabbitmq"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[ConsumingBroker]:
    url = request.getfixturevalue("nats_url" if request.param == "nats" else "rabbit_url")
    b = await connect_broker(url, namespace=f"t{unique_suffix()}")
    try:
        yield b
    finally:
        await b.delete_topology(KINDS)  # type: ignore[attr-defined]
        await b.close()


async def make_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    e = await make_engine(sqlite_url)
    yield e
    await e.dispose()


def make_events(streams: int, per_stream: int, types: tuple[str, ...] = ("MessageSent", "Read")) -> list[RecordedEvent]:
    """Events interleaved across streams, as the relay publishes them: in global position order."""
    now = datetime.now(UTC)
    ids = [f"conversation-{uuid.uuid4()}" for _ in range(streams)]
    out = []
    for v in range(1, per_stream + 1):
        for s in ids:
            position = len(out) + 1
            out.append(
                RecordedEvent(
                    position, s, v, uuid.uuid4(), types[v % len(types)], 1, now, now, "user-a",
                    None, None, payload(types[v % len(types)], s, v), {}, "", f"{position:064x}",
                )
            )  # fmt: skip
    return out


def payload(type_: str, stream_id: str, seq: int) -> dict[str, Any]:
    """A payload of `type_` that its catalogue model accepts (the runtime dead-letters any other)."""
    conversation = stream_id.removeprefix("conversation-")
    if type_ == "MessageSent":
        message_id = str(uuid.uuid4())
        return MessageSent(
            conversation_id=conversation, message_id=message_id, seq=seq, sender_id="user-a",
            client_msg_id=message_id, text="x" * 200,
        ).payload()  # fmt: skip
    return Read(conversation_id=conversation, user_id="user-b", up_to_seq=seq).payload()


class Recorder:
    """A handler that applies events idempotently, as the handler contract asks: it keeps the last
    stream version per stream and skips what it covers; a gap is an ordering bug."""

    def __init__(self, fail_on: set[uuid.UUID] | None = None) -> None:
        self.applied: dict[str, list[int]] = defaultdict(list)
        self.calls: dict[uuid.UUID, int] = defaultdict(int)
        self.by_instance: dict[str, int] = defaultdict(int)
        self.errors: list[str] = []
        self._fail_on = fail_on or set()

    def handler(self, instance: str) -> Callable[[list[RecordedEvent]], Awaitable[None]]:
        async def handle(batch: list[RecordedEvent]) -> None:
            for e in batch:
                self.calls[e.event_id] += 1
                if e.event_id in self._fail_on:
                    raise ValueError(f"cannot apply {e.event_id}")
            for e in batch:
                done = self.applied[e.stream_id]
                if done and e.stream_version <= done[-1]:
                    continue
                self.by_instance[instance] += 1
                done.append(e.stream_version)

        return handle

    def count(self) -> int:
        return sum(len(v) for v in self.applied.values())


async def eventually(check: Callable[[], bool], what: str, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def assert_in_stream_order(recorder: Recorder, events: list[RecordedEvent]) -> None:
    expected: dict[str, list[int]] = defaultdict(list)
    for e in events:
        expected[e.stream_id].append(e.stream_version)
    assert dict(recorder.applied) == dict(expected)


def worker(kind: str, types: set[str] | None, rec: Recorder, name: str, broker: ConsumingBroker,
           engine: AsyncEngine, metrics: MetricsRegistry | None = None) -> Worker:  # fmt: skip
    return Worker(kind, types, rec.handler(name), broker, engine, metrics=metrics, options=FAST, instance_id=name)


async def split_between(a: Worker, b: Worker, partitions: int) -> None:
    def split() -> bool:
        owned_a, owned_b = a.owned_partitions, b.owned_partitions
        return bool(owned_a) and bool(owned_b) and len(owned_a | owned_b) == partitions and not owned_a & owned_b

    await eventually(split, what="the partitions to be split between two instances")


async def check_events_reach_each_kind_once_in_order(broker: ConsumingBroker, engine: AsyncEngine) -> None:
    projections, delivery = Recorder(), Recorder()
    a = worker("projections", None, projections, "proj-a", broker, engine)
    b = worker("projections", None, projections, "proj-b", broker, engine)
    d = worker("delivery", {"MessageSent"}, delivery, "delivery-a", broker, engine)
    async with a, d, b:
        await split_between(a, b, broker.partitions)
        events = make_events(streams=40, per_stream=10)
        await broker.publish_events(events)
        sent = [e for e in events if e.type == "MessageSent"]
        await eventually(lambda: projections.count() == len(events), what="projections to get every event")
        await eventually(lambda: delivery.count() == len(sent), what="delivery to get MessageSent")
    assert_in_stream_order(projections, events)
    assert_in_stream_order(delivery, sent)
    assert projections.by_instance["proj-a"] > 0 and projections.by_instance["proj-b"] > 0
    assert set(projections.calls.values()) == {1}
    assert set(delivery.calls.values()) == {1}


async def test_events_reach_each_kind_once_in_stream_order_with_two_instances_sharing_partitions(
    broker: ConsumingBroker, engine: AsyncEngine
) -> None:
    await check_events_reach_each_kind_once_in_order(broker, engine)


async def test_instances_share_partitions_through_postgresql_leases(broker: ConsumingBroker, pg_url: str) -> None:
    pg = await make_engine(pg_url)
    try:
        await check_events_reach_each_kind_once_in_order(broker, pg)
    finally:
        await pg.dispose()


async def test_republished_events_are_handled_once(broker: ConsumingBroker, engine: AsyncEngine) -> None:
    rec = Recorder()
    async with worker("projections", None, rec, "proj-a", broker, engine):
        events = make_events(streams=10, per_stream=5)
        await broker.publish_events(events)
        await broker.publish_events(events)  # the relay after a crash, before its checkpoint moved
        await eventually(lambda: rec.count() == len(events), what="every event")
        await asyncio.sleep(0.5)  # room for a duplicate to show up
    assert set(rec.calls.values()) == {1}
    assert_in_stream_order(rec, events)


async def test_poison_event_is_dead_lettered_with_its_error_and_the_partition_moves_on(
    broker: ConsumingBroker, engine: AsyncEngine
) -> None:
    events = make_events(streams=8, per_stream=6)
    poison = events[len(events) // 2]
    rec = Recorder(fail_on={poison.event_id})
    registry = MetricsRegistry()
    async with worker("tickets", None, rec, "tickets-a", broker, engine, registry):
        await broker.publish_events(events)
        healthy = [e for e in events if e.event_id != poison.event_id]
        await eventually(lambda: rec.count() == len(healthy), what="every other event")
        letters = await broker.dead_letters("tickets")
    assert_in_stream_order(rec, healthy)  # including the poisoned stream's later events
    assert [dl.event_id for dl in letters] == [str(poison.event_id)]
    assert f"ValueError: cannot apply {poison.event_id}" in letters[0].error
    assert letters[0].type == poison.type
    # Once in its batch, then alone up to max_deliver tries.
    assert rec.calls[poison.event_id] == 1 + FAST.retry.max_deliver
    dead = registry.registry.get_sample_value("ledgerline_worker_dead_lettered_total", {"kind": "tickets"})
    assert dead == 1


async def test_partitions_move_to_the_remaining_instance_when_one_leaves(
    broker: ConsumingBroker, engine: AsyncEngine
) -> None:
    rec = Recorder()
    a = worker("projections", None, rec, "proj-a", broker, engine)
    b = worker("projections", None, rec, "proj-b", broker, engine)
    async with a:
        await b.start()
        await split_between(a, b, broker.partitions)
        await b.stop()
        await eventually(
            lambda: a.owned_partitions == frozenset(range(broker.partitions)), what="a to own every partition"
        )
        events = make_events(streams=20, per_stream=3)
        await broker.publish_events(events)
        await eventually(lambda: rec.count() == len(events), what="every event")
    assert rec.by_instance == {"proj-a": len(events)}
    assert_in_stream_order(rec, events)


async def test_ephemeral_messages_reach_subscribers(broker: ConsumingBroker) -> None:
    prefix = f"ledgerline_t{unique_suffix()}.typing"
    got: list[tuple[str, bytes]] = []
    arrived = asyncio.Event()

    async def on_message(subject: str, data: bytes) -> None:
        got.append((subject, data))
        arrived.set()

    sub = await broker.subscribe_ephemeral(f"{prefix}.*", on_message)
    try:
        await asyncio.sleep(0.1)  # the subscription reaches the server
        await broker.publish_ephemeral(f"{prefix}.conv1", b'{"user_id":"u1"}')
        await asyncio.wait_for(arrived.wait(), 5)
    finally:
        await sub.unsubscribe()
    assert got == [(f"{prefix}.conv1", b'{"user_id":"u1"}')]


# --- Ephemeral fan-in: many subscriptions on one broker (the gateway's one per connected user) -----


class Inbox:
    """Ephemeral handlers that record what each of them received, by name."""

    def __init__(self) -> None:
        self.got: dict[str, list[tuple[str, bytes]]] = defaultdict(list)

    def handler(self, name: str, *, fail: bool = False) -> Callable[[str, bytes], Awaitable[None]]:
        async def on_message(subject: str, data: bytes) -> None:
            self.got[name].append((subject, data))
            if fail:
                raise RuntimeError(f"handler {name} fails")

        return on_message

    def received(self) -> dict[str, list[tuple[str, bytes]]]:
        return {name: got for name, got in self.got.items() if got}


def ephemeral_prefix() -> str:
    # NATS subjects are not namespaced by the broker (the server is shared): a prefix of the test's own.
    return f"ledgerline_t{unique_suffix()}.rt"


async def test_thousands_of_ephemeral_subscriptions_on_one_broker(broker: ConsumingBroker) -> None:
    # Above RabbitMQ's default channel_max (2,047): a channel per subscription fails here.
    prefix, inbox, count = ephemeral_prefix(), Inbox(), 3_000
    subs = await asyncio.gather(
        *(broker.subscribe_ephemeral(f"{prefix}.user.u{n}", inbox.handler(f"u{n}")) for n in range(count))
    )
    await broker.publish_ephemeral(f"{prefix}.user.u1234", b"for u1234")
    await broker.publish_ephemeral(f"{prefix}.user.u0", b"marker")  # after the first, on the same wire
    await eventually(lambda: bool(inbox.got["u1234"]) and bool(inbox.got["u0"]), "u1234 and u0", within=10)
    assert inbox.received() == {
        "u1234": [(f"{prefix}.user.u1234", b"for u1234")],
        "u0": [(f"{prefix}.user.u0", b"marker")],
    }

    await asyncio.gather(*(sub.unsubscribe() for sub in subs))
    probe = await broker.subscribe_ephemeral(f"{prefix}.probe", inbox.handler("probe"))
    try:
        await broker.publish_ephemeral(f"{prefix}.user.u1234", b"to nobody")
        await broker.publish_ephemeral(f"{prefix}.probe", b"after")
        await eventually(lambda: bool(inbox.got["probe"]), "the probe", within=10)
    finally:
        await probe.unsubscribe()
    assert inbox.received()["u1234"] == [(f"{prefix}.user.u1234", b"for u1234")]
    if isinstance(broker, RabbitBroker):  # the unbinds reached the server: nothing came in for nobody
        assert broker.ephemeral.dropped == 0


async def test_two_ephemeral_subscriptions_to_one_subject_both_receive_until_one_leaves(
    broker: ConsumingBroker,
) -> None:
    prefix, inbox = ephemeral_prefix(), Inbox()
    subject = f"{prefix}.user.alice"
    a = await broker.subscribe_ephemeral(subject, inbox.handler("a"))
    b = await broker.subscribe_ephemeral(subject, inbox.handler("b"))
    try:
        await broker.publish_ephemeral(subject, b"one")
        await eventually(lambda: len(inbox.got["a"]) == 1 and len(inbox.got["b"]) == 1, "both to get one")
        await a.unsubscribe()
        await broker.publish_ephemeral(subject, b"two")
        await eventually(lambda: len(inbox.got["b"]) == 2, "b to get two")
    finally:
        await b.unsubscribe()
    assert inbox.got["a"] == [(subject, b"one")]
    assert inbox.got["b"] == [(subject, b"one"), (subject, b"two")]


async def test_wildcard_ephemeral_subscriptions_receive_alongside_exact_ones(broker: ConsumingBroker) -> None:
    # The presence listeners subscribe to PRESENCE_ALL (`ledgerline.rt.presence.*`) beside per-user subjects.
    prefix, inbox = ephemeral_prefix(), Inbox()
    subs = [
        await broker.subscribe_ephemeral(f"{prefix}.presence.*", inbox.handler("presence")),
        await broker.subscribe_ephemeral(f"{prefix}.presence.u1", inbox.handler("exact-u1")),
        await broker.subscribe_ephemeral(f"{prefix}.user.u1", inbox.handler("user-u1")),
        await broker.subscribe_ephemeral(f"{prefix}.>", inbox.handler("everything")),
    ]
    subjects = [f"{prefix}.presence.u1", f"{prefix}.presence.u2", f"{prefix}.user.u1", f"{prefix}.presence.u1.x"]
    try:
        for subject in subjects:
            await broker.publish_ephemeral(subject, subject.encode())
        await eventually(lambda: len(inbox.got["everything"]) == len(subjects), "every subject under the prefix")
        await eventually(lambda: len(inbox.got["presence"]) == 2, "both presence subjects")
    finally:
        for sub in subs:
            await sub.unsubscribe()
    sent = {s: (s, s.encode()) for s in subjects}
    assert inbox.received() == {
        "presence": [sent[f"{prefix}.presence.u1"], sent[f"{prefix}.presence.u2"]],
        "exact-u1": [sent[f"{prefix}.presence.u1"]],
        "user-u1": [sent[f"{prefix}.user.u1"]],
        "everything": [sent[s] for s in subjects],
    }


async def test_a_failing_ephemeral_handler_does_not_stop_the_others(broker: ConsumingBroker) -> None:
    prefix, inbox = ephemeral_prefix(), Inbox()
    subject = f"{prefix}.user.bob"
    subs = [
        await broker.subscribe_ephemeral(subject, inbox.handler("failing", fail=True)),
        await broker.subscribe_ephemeral(subject, inbox.handler("exact")),
        await broker.subscribe_ephemeral(f"{prefix}.user.*", inbox.handler("wildcard")),
        await broker.subscribe_ephemeral(f"{prefix}.user.carol", inbox.handler("carol")),
    ]
    try:
        await broker.publish_ephemeral(subject, b"1")
        await broker.publish_ephemeral(subject, b"2")
        await broker.publish_ephemeral(f"{prefix}.user.carol", b"3")
        await eventually(lambda: len(inbox.got["carol"]) == 1 and len(inbox.got["exact"]) == 2, "the others")
        await eventually(lambda: len(inbox.got["wildcard"]) == 3, "the wildcard")
    finally:
        for sub in subs:
            await sub.unsubscribe()
    assert [data for _, data in inbox.got["failing"]] == [b"1", b"2"]
    assert [data for _, data in inbox.got["exact"]] == [b"1", b"2"]
    assert [data for _, data in inbox.got["wildcard"]] == [b"1", b"2", b"3"]


async def test_ephemeral_resubscribe_racing_the_last_unsubscribe_keeps_the_subject_bound(
    broker: ConsumingBroker,
) -> None:
    # A user's last socket closing while a new one opens: the hub unsubscribes and subscribes the same
    # subject concurrently. Whatever the interleaving, the new subscription must keep receiving.
    prefix, inbox = ephemeral_prefix(), Inbox()
    subject = f"{prefix}.user.dana"
    sub = await broker.subscribe_ephemeral(subject, inbox.handler("r0"))
    rounds = 20
    for n in range(1, rounds + 1):
        _, sub = await asyncio.gather(sub.unsubscribe(), broker.subscribe_ephemeral(subject, inbox.handler(f"r{n}")))
    try:
        await broker.publish_ephemeral(subject, b"still here")
        await eventually(lambda: bool(inbox.got[f"r{rounds}"]), "the last subscription", within=10)
    finally:
        await sub.unsubscribe()
    assert inbox.received() == {f"r{rounds}": [(subject, b"still here")]}
