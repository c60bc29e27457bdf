"""The audit projection records every event, known or not, with a summary and the people involved;
an odd payload is recorded without stopping the batch; `projections rebuild audit` rebuilds it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from helpers.audit_support import CONV, STREAM, write_script
from helpers.store_support import cli_env, run_cli
from sqlalchemy import text

from services.audit import queries
from services.projections.projector import Projector
from shared.events.envelope import RecordedEvent
from shared.store.engine import create_engine
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore


def odd_event(position: int, type_: str, payload: dict[str, object]) -> RecordedEvent:
    now = datetime.now(UTC)
    return RecordedEvent(
        position, "future-1", 1, uuid.uuid4(), type_, 3, now, now, "system:future", None, None, payload, {}, "0" * 64,
        "f" * 64,
    )  # fmt: skip


async def test_unknown_types_and_odd_payloads_are_recorded_not_fatal(database_url: str) -> None:
    migrate(database_url)
    engine = create_engine(database_url, pool_size=1)
    try:
        batch = [
            odd_event(1, "SomethingNew", {"user_id": 5, "members": "nobody", "conversation_id": "c9"}),
            odd_event(2, "MemberAdded", {"conversation_id": "c9"}),  # no user: no membership change
        ]
        await Projector(engine, projections=("audit",)).apply(batch)
        async with engine.connect() as conn:
            rows = [r async for page in queries.pages(conn, queries.EventFilter(conversation_id="c9")) for r in page]
            stays = await queries.membership(conn, "c9", None)
        assert [(r.to_json()["type"], r.to_json()["summary"]) for r in rows] == [
            ("SomethingNew", "system:future: SomethingNew c9"),
            ("MemberAdded", "None added None to the conversation"),
        ]
        assert stays == []
    finally:
        await engine.dispose()


async def test_people_filter_and_cli_rebuild(database_url: str) -> None:
    migrate(database_url)
    store = await SqlEventStore.open(database_url)
    engine = create_engine(database_url, pool_size=1)
    try:
        await write_script(store)
        done = run_cli("projections", "rebuild", "audit", "--quiet", env=cli_env(database_url))
        assert done.returncode == 0, done.stderr
        async with engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM rm_audit_events"))).scalar_one()
            dan = [r.to_json() async for page in queries.pages(conn, queries.EventFilter(user_id="dan")) for r in page]
        assert count == len(await store.read_stream(STREAM))
        assert [(e["type"], e["summary"]) for e in dan] == [
            ("MemberAdded", "ann added dan to the conversation"),
            ("Delivered", "dan received messages up to #3"),
        ]
        assert all(e["conversation_id"] == CONV for e in dan)
    finally:
        await store.close()
        await engine.dispose()
