"""Rebuild gives identical rows; status shows lag; the unread query is O(1) in the group size."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import test_read_models_support as support
from sqlalchemy import event, inspect
from test_read_models_support import RM_TABLES, Env, dump

from services import cli
from services.projections import queries
from services.projections.rebuild import rebuild, status
from services.projections.tables import PROJECTIONS, TABLES
from shared.events.conversation import ObjectLink

env = support.env  # the fixture, shared with the other test_read_models_* modules
PARTITIONS = 16


async def _scenario(env: Env) -> None:
    link = ObjectLink(kind="deal", id="D-7", title="Сделка")
    await env.seen("a", "Анна")
    await env.seen("b", "Борис")
    await env.start("d", "direct", ["a", "b"])
    await env.start("g", "group", ["a", "b", "c", "e"], title="Team")
    await env.send("d", "a", "договор готов", links=(link,), files=("f1",))
    await env.send("g", "b", "hello team", links=(link,))
    await env.send("g", "c", "to be retracted", files=("f2",))
    await env.edit("g", 1, "hello, team", "b")
    await env.retract("g", 2, "c")
    await env.read("g", "a", 2)
    await env.delivered("d", "b", 1)
    await env.remove("g", "e")
    await env.seen("a", "Анна К.", changed=True)


def _columns(sync_conn: Any) -> dict[str, list[str]]:
    inspector = inspect(sync_conn)
    return {t: [c["name"] for c in inspector.get_columns(t)] for t in RM_TABLES}


async def test_rebuild_gives_identical_rows_and_checkpoints_at_the_head(env: Env) -> None:
    await _scenario(env)
    await env.project(page=3)
    async with env.engine.connect() as conn:
        before, columns_before = await dump(conn), await conn.run_sync(_columns)
    head = await rebuild(env.engine, env.store, partitions=PARTITIONS)
    async with env.engine.connect() as conn:
        after, columns_after = await dump(conn), await conn.run_sync(_columns)
        chat = [await queries.checkpoint(conn, "chat", p) for p in range(PARTITIONS)]
        hits = await queries.search(conn, "b", "договора")
    assert after == before and columns_after == columns_before
    assert head == (await env.store.head()).position and chat == [head] * PARTITIONS
    assert [h.conversation_id for h in hits] == ["d"]

    await env.send("d", "b", "after the rebuild")  # the worker carries on from the rebuilt head
    await env.project()
    async with env.engine.connect() as conn:
        assert (await queries.unread(conn, "a")).conversations == {"d": 1}
    await rebuild(env.engine, env.store, ["directory"], partitions=PARTITIONS)  # twice: names stay free


async def test_status_shows_lag_per_partition(env: Env) -> None:
    await _scenario(env)
    rows = await status(env.engine, PARTITIONS)
    head = (await env.store.head()).position
    assert len(rows) == len(PROJECTIONS) * PARTITIONS and all(r.head == head for r in rows)
    assert sum(r.pending for r in rows if r.projection == "chat") == head
    await env.project()
    assert all(r.pending == 0 for r in await status(env.engine, PARTITIONS))


async def test_cli_rebuild_and_status(
    env: Env, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _scenario(env)
    monkeypatch.setenv("LEDGERLINE_DATABASE_URL", database_url)
    # The CLI runs its own event loop: call it from a thread, as a shell would from outside.
    assert await asyncio.to_thread(cli.main, ["projections", "rebuild", "chat", "--quiet"]) == 0
    assert await asyncio.to_thread(cli.main, ["projections", "status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["projection", "partition", "checkpoint", "lag", "head"]
    chat_rows = [line.split() for line in out[1:] if line.startswith("chat")]
    assert {row[4] for row in chat_rows} == {row[2] for row in chat_rows} == {str((await env.store.head()).position)}


async def test_unread_reads_one_member_row_whatever_the_group_size(env: Env) -> None:
    """The unread query's shape: the caller's rm_members row by index, no scan or count of members."""
    users = [f"u{i:03}" for i in range(300)]
    await env.start("big", "group", users)
    await env.send("big", "u000", "hi")
    await env.project()
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(env.engine.sync_engine, "before_cursor_execute", capture)
    async with env.engine.connect() as conn:
        assert (await queries.unread(conn, "u123")).total == 1
        event.remove(env.engine.sync_engine, "before_cursor_execute", capture)
        [(sql, params)] = [s for s in statements if s[0].lstrip().upper().startswith("SELECT")]
        assert "count(" not in sql.lower() and "group by" not in sql.lower()
        if conn.dialect.name == "postgresql":
            plan = (await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)).scalar_one()
            member_nodes = [n for n in _nodes(plan[0]["Plan"]) if n.get("Relation Name") == TABLES.members.name]
            assert [n["Actual Rows"] for n in member_nodes] == [1]
        else:
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)).all()
            details = [row[-1] for row in plan if "rm_members" in row[-1]]
            assert details and all(d.startswith("SEARCH") for d in details), details


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]
