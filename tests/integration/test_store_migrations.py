"""Migrations: they build the store on an empty database, and running them again, or from two processes
at once (services migrate on start), changes nothing and fails nothing."""

from __future__ import annotations

import asyncio

from helpers.store_support import LEDGERLINE, REPO, cli_env, message, migrated_store, stream_of
from sqlalchemy import create_engine, inspect, text

from shared.store.migrate import migrate, sync_url
from shared.store.sql import SqlEventStore
from shared.store.verify import verify_chain

EXPECTED_TABLES = {"events", "checkpoints", "alembic_version"}


def schema_of(database_url: str) -> tuple[set[str], list[str], set[str]]:
    """(tables, alembic revisions, index and constraint names on events)."""
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            tables = set(inspector.get_table_names())
            revisions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
            names = {i["name"] for i in inspector.get_indexes("events")} | {
                u["name"] for u in inspector.get_unique_constraints("events")
            }
    finally:
        engine.dispose()
    return tables, revisions, {n for n in names if n}


def json_columns_of(database_url: str) -> dict[str, str]:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'events' AND column_name IN ('payload', 'metadata')"
                )
            )
            return {r.column_name: r.data_type for r in rows}
    finally:
        engine.dispose()


async def test_migrations_build_the_store_on_an_empty_database_and_are_idempotent(database_url: str) -> None:
    migrate(database_url)
    tables, revisions, names = schema_of(database_url)
    assert tables >= EXPECTED_TABLES
    assert len(revisions) == 1
    assert {"uq_events_event_id", "uq_events_stream_version"} <= names
    assert "ix_events_type_position" not in names  # dropped by 0010: no query used it, every append paid it
    if database_url.startswith("postgresql"):  # 0010: the JSON text as written, not re-encoded jsonb
        assert json_columns_of(database_url) == {"payload": "json", "metadata": "json"}

    async with migrated_store(database_url) as store:  # migrates a second time, then appends
        await store.append(stream_of("m"), [message("m", 1)])
    migrate(database_url)
    assert schema_of(database_url) == (tables, revisions, names)
    async with migrated_store(database_url) as store:
        assert [e.stream_id for e in await store.read_all()] == [stream_of("m")]


async def test_two_processes_migrating_at_once_both_succeed(database_url: str) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            str(LEDGERLINE), "migrate", env=cli_env(database_url), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]  # fmt: skip
    outputs = [await proc.communicate() for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
        assert b"migrated" in out
    tables, revisions, _ = schema_of(database_url)
    assert tables >= EXPECTED_TABLES
    assert len(revisions) == 1


async def test_events_written_before_0010_keep_their_chain_and_content(database_url: str) -> None:
    """A store that ran 0009 (jsonb on PostgreSQL, the type index) upgrades in place: every event reads
    back the same and `audit verify`'s walk passes, whatever text jsonb gave back for the rewrite."""
    migrate(database_url, "0009_key_erasures")
    store = await SqlEventStore.open(database_url)
    try:
        for seq in range(1, 6):
            await store.append(stream_of("old"), [message("old", seq, text=f"до миграции {seq}")])
        before = [(e.event_id, e.payload, e.metadata, e.hash) for e in await store.read_all()]
    finally:
        await store.close()
    migrate(database_url)
    async with migrated_store(database_url) as store:
        await store.append(stream_of("old"), [message("old", 6, text="после")])
        after = await store.read_all()
        assert [(e.event_id, e.payload, e.metadata, e.hash) for e in after[:5]] == before
        assert [e.event.text for e in after] == [f"до миграции {n}" for n in range(1, 6)] + ["после"]
        result = await verify_chain(store.engine)
    assert result.ok, result.problem
    assert result.head_position == 6
