"""The relay against the real databases (SQLite and PostgreSQL): order, checkpoint, resume, one
leader, takeover, a dropped lock session, metrics; and once end to end through real NATS.

Most tests use a recording publisher: the broker adapters have their own contract suite, and what is
under test here is what the relay publishes and when."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

import psycopg
import pytest
from conftest import unique_suffix
from helpers.flow_events import append_messages
from sqlalchemy.engine import make_url

from shared.broker.factory import connect_broker
from shared.broker.relay import Relay, RelayOptions
from shared.events.envelope import RecordedEvent
from shared.metrics import MetricsRegistry
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore

FAST = RelayOptions(page_size=100, idle_wait=0.2, standby_retry=0.2, retry_base=0.05, retry_max=0.2)


class RecordingPublisher:
    def __init__(self, fail_times: int = 0) -> None:
        self.published: list[RecordedEvent] = []
        self.calls = 0
        self._fail_times = fail_times

    async def publish_events(self, events: Sequence[RecordedEvent]) -> None:
        self.calls += 1
        if self._fail_times > 0:
            self._fail_times -= 1
            raise ConnectionError("broker down (test)")
        self.published.extend(events)

    def positions(self) -> list[int]:
        return [e.position for e in self.published]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlEventStore]:
    await asyncio.to_thread(migrate, database_url)
    s = await SqlEventStore.open(database_url)
    try:
        yield s
    finally:
        await s.close()


def relay(store: SqlEventStore, pub: RecordingPublisher, url: str, metrics: MetricsRegistry | None = None) -> Relay:
    return Relay.for_database(store, pub, store.engine, url, options=FAST, metrics=metrics)


async def eventually(check: Callable[[], bool], what: str, within: float = 10.0) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check():
        if loop.time() - started > within:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.02)
    return loop.time() - started


async def test_relay_publishes_every_event_in_position_order_and_resumes_from_its_checkpoint(
    store: SqlEventStore, database_url: str
) -> None:
    await append_messages(store, streams=7, per_stream=30)
    first = RecordingPublisher()
    r = relay(store, first, database_url)
    await r.start()
    await eventually(lambda: len(first.published) == 210, "the first 210 events")
    await r.stop()
    assert first.positions() == list(range(1, 211))

    await append_messages(store, streams=3, per_stream=10)  # while no relay runs
    second = RecordingPublisher()
    r = relay(store, second, database_url)
    await r.start()
    await eventually(lambda: len(second.published) == 30, "the 30 events appended while stopped")
    await append_messages(store, streams=1, per_stream=5)  # wakes the idle relay
    await eventually(lambda: len(second.published) == 35, "the events appended while it waited")
    await r.stop()
    assert second.positions() == list(range(211, 246)), "resumed after the checkpoint, nothing twice"
    assert r.position == 245


async def test_a_failed_publish_is_retried_from_the_checkpoint(store: SqlEventStore, database_url: str) -> None:
    await append_messages(store, streams=2, per_stream=50)
    publisher = RecordingPublisher(fail_times=3)
    r = relay(store, publisher, database_url)
    await r.start()
    await eventually(lambda: len(publisher.published) == 100, "every event after the broker came back")
    await r.stop()
    assert publisher.positions() == list(range(1, 101))
    assert publisher.calls == 3 + 1


async def test_only_one_relay_leads_and_the_standby_takes_over(store: SqlEventStore, database_url: str) -> None:
    a_pub, b_pub = RecordingPublisher(), RecordingPublisher()
    a, b = relay(store, a_pub, database_url), relay(store, b_pub, database_url)
    await a.start()
    await eventually(lambda: a.is_leader, "the first relay to lead")
    await b.start()
    await append_messages(store, streams=4, per_stream=25)
    await eventually(lambda: len(a_pub.published) == 100, "the leader to publish")
    await asyncio.sleep(0.5)  # several standby retries
    assert not b.is_leader and not b_pub.published

    await a.stop()
    took = await eventually(lambda: b.is_leader, "the standby to take over", within=5.0)
    await append_messages(store, streams=1, per_stream=10)
    await eventually(lambda: len(b_pub.published) == 10, "the new leader to publish")
    await b.stop()
    assert a_pub.positions() + b_pub.positions() == list(range(1, 111))
    assert took < 2.0


@pytest.mark.postgres
async def test_a_dropped_lock_session_stops_publishing_at_once(pg_url: str) -> None:
    await asyncio.to_thread(migrate, pg_url)
    store = await SqlEventStore.open(pg_url)
    publisher = RecordingPublisher()
    r = relay(store, publisher, pg_url)
    try:
        await r.start()
        await eventually(lambda: r.is_leader, "the relay to lead")
        dbname = make_url(pg_url).database
        with psycopg.connect(make_url(pg_url).set(drivername="postgresql", database="postgres").render_as_string(False),
                             autocommit=True) as admin:  # fmt: skip
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'ledgerline-relay' AND datname = %s",
                (dbname,),
            ).fetchone()
        assert killed == (1,)
        # It notices within a ping, stops, and (the lock being free now) takes it again on a new session.
        took = await eventually(lambda: r.terms == 2 and r.is_leader, "a second term", within=5.0)
        assert took < 3.0
        await append_messages(store, streams=1, per_stream=3)
        await eventually(lambda: len(publisher.published) == 3, "publishing to resume")
    finally:
        await r.stop()
        await store.close()


async def test_metrics_show_leader_lag_and_published(store: SqlEventStore, database_url: str) -> None:
    metrics = MetricsRegistry()
    standby_metrics = MetricsRegistry()
    await append_messages(store, streams=2, per_stream=20)
    standby = relay(store, RecordingPublisher(), database_url, standby_metrics)
    blocker = relay(store, RecordingPublisher(fail_times=10_000), database_url, metrics)
    await blocker.start()
    await eventually(lambda: blocker.is_leader, "the failing relay to lead")
    await standby.start()

    def sample(m: MetricsRegistry, name: str) -> float:
        value = m.registry.get_sample_value(name)
        return -1.0 if value is None else value

    await eventually(lambda: sample(standby_metrics, "ledgerline_relay_lag_events") == 40, "the standby to see the lag")
    assert sample(standby_metrics, "ledgerline_relay_leader") == 0
    assert sample(standby_metrics, "ledgerline_relay_lag_seconds") > 0
    assert sample(metrics, "ledgerline_relay_leader") == 1
    await eventually(lambda: sample(metrics, "ledgerline_relay_failures_total") >= 1, "the leader's failures counted")
    await blocker.stop()
    await eventually(lambda: sample(standby_metrics, "ledgerline_relay_published_total") == 40, "the takeover")
    await eventually(lambda: sample(standby_metrics, "ledgerline_relay_lag_events") == 0, "the lag to clear")
    await standby.stop()
    assert sample(standby_metrics, "ledgerline_relay_leader") == 0


@pytest.mark.nats
async def test_the_relay_publishes_to_real_jetstream_with_event_ids_as_msg_ids(sqlite_url: str, nats_url: str) -> None:
    import nats

    await asyncio.to_thread(migrate, sqlite_url)
    store = await SqlEventStore.open(sqlite_url)
    broker = await connect_broker(nats_url, namespace=f"t{unique_suffix()}")
    try:
        await append_messages(store, streams=5, per_stream=40)
        r = Relay.for_database(store, broker, store.engine, sqlite_url, options=FAST)
        await r.start()
        await eventually(lambda: r.position == 200, "the relay to publish 200 events")
        await r.stop()
        # A relay that crashed before its checkpoint republishes: JetStream stores nothing twice.
        await broker.publish_events(await store.read_all(0, 200))
        nc = await nats.connect(nats_url)
        try:
            info = await nc.jetstream().stream_info(broker.names.stream)  # type: ignore[attr-defined]
            assert info.state.messages == 200
        finally:
            await nc.close()
    finally:
        await broker.delete_topology([])  # type: ignore[attr-defined]
        await broker.close()
        await store.close()
