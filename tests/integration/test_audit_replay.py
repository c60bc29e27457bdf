"""Conversation replay at five moments gives the states written by hand; the replay from the event
store equals the replay from the audit read model, and its membership equals the read model's
membership intervals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from helpers.audit_support import CONV, EXPECTED, MOMENTS, STREAM, observed, write_script
from sqlalchemy.ext.asyncio import AsyncEngine

from services.audit import queries
from services.audit.replay import replay, to_json
from services.projections.projector import Projector
from shared.store.engine import create_engine
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[tuple[SqlEventStore, AsyncEngine]]:
    migrate(database_url)
    store = await SqlEventStore.open(database_url)
    engine = create_engine(database_url, pool_size=2)
    try:
        yield store, engine
    finally:
        await store.close()
        await engine.dispose()


async def project_all(store: SqlEventStore, engine: AsyncEngine) -> None:
    projector, after = Projector(engine), 0
    while batch := await store.read_all(after, 5):  # small pages: joins and leaves across batches
        await projector.apply(batch)
        after = batch[-1].position


async def test_replay_at_five_moments_gives_the_hand_written_states(
    stores: tuple[SqlEventStore, AsyncEngine],
) -> None:
    store, _ = stores
    moments = await write_script(store)
    events = await store.read_stream(STREAM)
    for step in MOMENTS:
        state = to_json(replay(CONV, events, moments[step - 1]))
        assert observed(state) == EXPECTED[step], f"after step {step}"
        assert state["position"] == events[step - 1].position


async def test_replay_before_the_conversation_existed_is_empty(stores: tuple[SqlEventStore, AsyncEngine]) -> None:
    store, _ = stores
    moments = await write_script(store)
    before = moments[0].replace(year=moments[0].year - 1)
    state = replay(CONV, await store.read_stream(STREAM), before)
    assert not state.exists and state.messages == {} and state.members == []


async def test_replay_from_the_store_equals_the_read_models_answer(stores: tuple[SqlEventStore, AsyncEngine]) -> None:
    store, engine = stores
    moments = await write_script(store)
    await project_all(store, engine)
    events = await store.read_stream(STREAM)
    for as_of in [*(moments[s - 1] for s in MOMENTS), None]:
        from_store = to_json(replay(CONV, events, as_of))
        async with engine.connect() as conn:
            rows = await queries.conversation_rows(conn, CONV, as_of)
            stays = await queries.membership(conn, CONV, as_of)
        from_read_model = to_json(replay(CONV, rows, as_of))
        assert from_read_model == from_store
        key = lambda s: (s["user_id"], s["joined_at"])  # noqa: E731  # a sort key, nothing more
        assert sorted(stays, key=key) == sorted(from_store["membership"], key=key)
