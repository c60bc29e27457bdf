"""Event store benchmark: our append and read-all against the raw driver, in the same run.

    .venv/bin/python bench/store_bench.py [--events 20000] [--single 2000] [--db postgresql --db sqlite]

Per database (PostgreSQL in a fresh `ledgerline_bench_<random>` database dropped afterwards; SQLite
in a temporary directory):
- append throughput with 1 and with 64 concurrent appenders: 1 KB MessageSent events, one event per
  call, each appender to its own stream with its expected version; p50/p99 latency of one call at 64
  (the senders' keys of those conversations exist before the clock starts);
- read-all throughput: read_all in pages of 1,000 with every event decoded into its model;
- the raw driver doing the same in the same run: psycopg `executemany` of 1,000 rows per transaction
  into a scratch table of the same shape and reads in pages of 1,000 with orjson loads; sqlite3 alike.
  The two reads alternate READ_ROUNDS times and the best of each is reported.
Our figures are also given as a ratio to raw: absolute figures drift ±30% on shared machines
(../shared/handbook/BASELINES.md). Progress goes to stderr, the result table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import heap
from shared.events.conversation import MessageSent
from shared.events.envelope import NewEvent
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
CONCURRENT = 64
RAW_BATCH = 1000
PAGE = 1000
READ_ROUNDS = 5
TEXT = "Ledgerline benchmark message. " * 30  # ~900 characters: with the other fields a ~1 KB payload

GOALS = {"append_64_per_s": 30_000, "append_ratio": 0.3, "p99_ms": 5.0, "read_per_s": 150_000, "read_ratio": 0.6}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def new_event(stream: int, seq: int) -> NewEvent:
    conversation = f"bench-{stream}"
    event = MessageSent(
        conversation_id=conversation,
        message_id=str(uuid.uuid4()),
        seq=seq,
        sender_id="user-bench",
        client_msg_id=f"c-{seq}",
        text=TEXT,
    )
    return NewEvent(event, actor="user-bench", metadata={"ip": "127.0.0.1"})


async def appenders(store: SqlEventStore, appenders: int, total: int, first_stream: int) -> tuple[float, list[float]]:
    """`appenders` tasks, each appending one event per call to its own stream; (events/s, latencies)."""
    per_appender = total // appenders
    latencies: list[float] = []

    async def appender(stream: int) -> None:
        version = 0
        for seq in range(1, per_appender + 1):
            event = new_event(stream, seq)  # built outside the timed call, as a command handler would
            started = time.perf_counter()
            result = await store.append(f"conversation-bench-{stream}", [event], expected_version=version)
            latencies.append(time.perf_counter() - started)
            version = result.last_version

    # Each conversation's first message creates its sender's key there (one transaction, docs/audit.md):
    # made before the clock starts, so that the figures are those of conversations in use.
    await store.keys.seal([new_event(first_stream + i, 1) for i in range(appenders)])
    started = time.perf_counter()
    await asyncio.gather(*(appender(first_stream + i) for i in range(appenders)))
    return per_appender * appenders / (time.perf_counter() - started), latencies


async def read_all_decoded(store: SqlEventStore) -> tuple[float, int]:
    started, after, count = time.perf_counter(), 0, 0
    while page := await store.read_all(after, PAGE):
        for recorded in page:
            recorded.event  # noqa: B018  (decoding into the model is what is measured)
        count += len(page)
        after = page[-1].position
    return count / (time.perf_counter() - started), count


def raw_rows(n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        e = new_event(i % CONCURRENT, i // CONCURRENT + 1)
        rows.append(
            {
                "position": i + 1,
                "stream_id": f"conversation-bench-{i % CONCURRENT}",
                "stream_version": i // CONCURRENT + 1,
                "event_id": e.event_id,
                "type": e.type,
                "schema_version": e.schema_version,
                "occurred_at": e.occurred_at,
                "recorded_at": e.occurred_at,
                "actor": e.actor,
                "payload": e.event.payload(),
                "metadata": e.metadata,
                "prev_hash": "0" * 64,
                "hash": "1" * 64,
            }
        )
    return rows


RAW_COLUMNS = (
    "position, stream_id, stream_version, event_id, type, schema_version, occurred_at, recorded_at, actor, "
    "payload, metadata, prev_hash, hash"
)


class RawPostgres:
    """psycopg executemany, 1,000 rows per transaction, into a scratch table of the events' shape;
    reads in pages of 1,000 with orjson loads."""

    def __init__(self, conninfo: str) -> None:
        self._conn = psycopg.connect(conninfo)

    def insert(self, rows: list[dict[str, Any]]) -> float:
        conn = self._conn
        conn.execute("CREATE TABLE raw_events (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)")
        conn.commit()
        sql = f"INSERT INTO raw_events ({RAW_COLUMNS}) VALUES ({', '.join(['%s'] * 13)})"
        started = time.perf_counter()
        for at in range(0, len(rows), RAW_BATCH):
            with conn.cursor() as cur:
                cur.executemany(sql, [_pg_row(r) for r in rows[at : at + RAW_BATCH]])
            conn.commit()
        self._count = len(rows)
        psycopg.types.json.set_json_loads(orjson.loads, conn)
        return len(rows) / (time.perf_counter() - started)

    def read(self) -> float:
        conn = self._conn
        rate = _read_pages(lambda after: conn.execute(_page_sql("%s"), (after,)).fetchall(), self._count)
        conn.commit()
        return rate

    def close(self) -> None:
        self._conn.close()


def _pg_row(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["position"], r["stream_id"], r["stream_version"], r["event_id"], r["type"], r["schema_version"],
        r["occurred_at"], r["recorded_at"], r["actor"], Jsonb(r["payload"], dumps=_orjson_str),
        Jsonb(r["metadata"], dumps=_orjson_str), r["prev_hash"], r["hash"],
    )  # fmt: skip


def _orjson_str(value: Any) -> str:
    return orjson.dumps(value).decode()


def _page_sql(marker: str) -> str:
    return f"SELECT * FROM raw_events WHERE position > {marker} ORDER BY position LIMIT {PAGE}"


def _read_pages(fetch: Callable[[int], list[Any]], expected: int) -> float:
    started, after, count = time.perf_counter(), 0, 0
    while page := fetch(after):
        count += len(page)
        after = page[-1][0]
    assert count == expected, (count, expected)
    return count / (time.perf_counter() - started)


class RawSqlite:
    """sqlite3 executemany, 1,000 rows per transaction (WAL, synchronous FULL as the store runs)."""

    def __init__(self, path: Path) -> None:
        # check_same_thread off: each step runs in a worker thread of its own (asyncio.to_thread).
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def insert(self, rows: list[dict[str, Any]]) -> float:
        conn = self._conn
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(
            "CREATE TABLE raw_events (position INTEGER PRIMARY KEY, stream_id VARCHAR(200) NOT NULL,"
            " stream_version INTEGER NOT NULL, event_id CHAR(32) NOT NULL UNIQUE, type VARCHAR(100) NOT NULL,"
            " schema_version SMALLINT NOT NULL, occurred_at VARCHAR(32) NOT NULL, recorded_at VARCHAR(32) NOT NULL,"
            " actor VARCHAR(200) NOT NULL, payload JSON NOT NULL, metadata JSON NOT NULL,"
            " prev_hash VARCHAR(64) NOT NULL, hash VARCHAR(64) NOT NULL, UNIQUE (stream_id, stream_version))"
        )
        sql = f"INSERT INTO raw_events ({RAW_COLUMNS}) VALUES ({', '.join(['?'] * 13)})"
        started = time.perf_counter()
        for at in range(0, len(rows), RAW_BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, [_sqlite_row(r) for r in rows[at : at + RAW_BATCH]])
            conn.execute("COMMIT")
        self._count = len(rows)
        return len(rows) / (time.perf_counter() - started)

    def read(self) -> float:
        def fetch(after: int) -> list[Any]:
            page = self._conn.execute(_page_sql("?"), (after,)).fetchall()
            return [(r[0], orjson.loads(r[9]), orjson.loads(r[10])) for r in page]

        return _read_pages(fetch, self._count)

    def close(self) -> None:
        self._conn.close()


def _sqlite_row(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["position"], r["stream_id"], r["stream_version"], r["event_id"].hex, r["type"], r["schema_version"],
        r["occurred_at"].isoformat(), r["recorded_at"].isoformat(), r["actor"], orjson.dumps(r["payload"]),
        orjson.dumps(r["metadata"]), r["prev_hash"], r["hash"],
    )  # fmt: skip


@contextlib.asynccontextmanager
async def bench_database(kind: str) -> AsyncIterator[tuple[str, Callable[[], RawPostgres | RawSqlite]]]:
    """(SQLAlchemy URL, a maker of the raw driver on the same database) for a fresh, migrated database."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ledgerline_bench_") as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            migrate(url)
            yield url, lambda: RawSqlite(Path(tmp) / "raw.db")
        return
    name = f"ledgerline_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = PG_URL.format(name=name)
        migrate(url)
        conninfo = f"host=127.0.0.1 port=5432 user=postgres dbname={name}"
        yield url, lambda: RawPostgres(conninfo)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def bench_one(kind: str, events: int, single: int) -> dict[str, Any]:
    async with bench_database(kind) as (url, raw):
        store = await SqlEventStore.open(url)
        try:
            await store.head()
            progress(f"{kind}: 1 appender, {single:,} appends")
            one_rate, _ = await appenders(store, 1, single, first_stream=10_000)
            progress(f"  {one_rate:,.0f}/s; {CONCURRENT} appenders, {events:,} appends")
            many_rate, latencies = await appenders(store, CONCURRENT, events, first_stream=0)
            progress(f"  {many_rate:,.0f}/s; raw driver inserts")
            driver = await asyncio.to_thread(raw)
            try:
                raw_append = await asyncio.to_thread(driver.insert, raw_rows(events))
                progress(f"  raw: {raw_append:,.0f} inserted/s; read-all, ours then raw, {READ_ROUNDS} times")
                # Alternated, best of each: one read lasts about a second, and a shared VM's speed
                # drifts more than that between two runs (docs/event-store.md).
                read_rate = raw_read = 0.0
                for _ in range(READ_ROUNDS):
                    ours, read_count = await read_all_decoded(store)
                    theirs = await asyncio.to_thread(driver.read)
                    progress(f"  ours {ours:,.0f}/s over {read_count:,} events, raw {theirs:,.0f}/s")
                    read_rate, raw_read = max(read_rate, ours), max(raw_read, theirs)
            finally:
                driver.close()
        finally:
            await store.close()
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "append_1_per_s": round(one_rate),
        "append_64_per_s": round(many_rate),
        "append_p50_ms": round(cuts[49] * 1000, 2),
        "append_p99_ms": round(cuts[98] * 1000, 2),
        "raw_append_per_s": round(raw_append),
        "append_ratio": round(many_rate / raw_append, 2),
        "read_per_s": round(read_rate),
        "raw_read_per_s": round(raw_read),
        "read_ratio": round(read_rate / raw_read, 2),
    }


async def run(
    events: int = 20_000, single: int = 2_000, databases: tuple[str, ...] = ("postgresql", "sqlite")
) -> dict[str, Any]:
    """The figures per database: {"postgresql": {...}, "sqlite": {...}}; see the module docstring."""
    events -= events % CONCURRENT
    return {kind: await bench_one(kind, events, single) for kind in databases}


def table(result: dict[str, Any]) -> str:
    header = (
        f"{'database':10} {'1 app/s':>9} {'64 app/s':>9} {'raw/s':>9} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7}"
        f" {'read/s':>9} {'raw/s':>9} {'ratio':>6}"
    )
    lines = [header]
    for kind, r in result.items():
        lines.append(
            f"{kind:10} {r['append_1_per_s']:>9,} {r['append_64_per_s']:>9,} {r['raw_append_per_s']:>9,}"
            f" {r['append_ratio']:>6} {r['append_p50_ms']:>7} {r['append_p99_ms']:>7} {r['read_per_s']:>9,}"
            f" {r['raw_read_per_s']:>9,} {r['read_ratio']:>6}"
        )
    goals = ", ".join(f"{k} {'<=' if k.startswith('p99') else '>='} {v:,}" for k, v in GOALS.items())
    lines.append(f"goals: {goals}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="appends with 64 appenders (and raw rows)")
    parser.add_argument("--single", type=int, default=2_000, help="appends with 1 appender")
    parser.add_argument("--db", action="append", choices=["postgresql", "sqlite"], dest="databases")
    args = parser.parse_args()
    databases = tuple(args.databases or ("postgresql", "sqlite"))
    heap.settle()  # as every ledgerline process does once started (shared/heap.py)
    result = asyncio.run(run(args.events, args.single, databases))
    print(table(result))


if __name__ == "__main__":
    main()
