"""`ledgerline_projection_lag_events{projection}`: events a read model has not applied yet, per projection,
on /metrics from the start and back to 0 once the projector has caught up."""

from __future__ import annotations

import test_read_models_support as support
from sqlalchemy import update
from test_read_models_support import Env

from services.projections.lag_metrics import LagCounter, lag_gauge, refresh_lag
from services.projections.tables import PROJECTIONS, checkpoints
from shared.metrics import MetricsRegistry

env = support.env  # the fixture, shared with the other test_read_models_* modules
PARTITIONS = 16


def lag(metrics: MetricsRegistry, projection: str) -> float | None:
    return metrics.registry.get_sample_value("ledgerline_projection_lag_events", {"projection": projection})


async def test_projection_lag_counts_unapplied_events_and_returns_to_zero(env: Env) -> None:
    metrics = MetricsRegistry()
    gauge = lag_gauge(metrics)
    assert all(lag(metrics, name) == 0 for name in PROJECTIONS)  # exposed before the first refresh

    await env.start("g", "group", ["a", "b"], title="Lag")
    await env.send("g", "a", "one")
    await env.send("g", "b", "two")
    head = (await env.store.head()).position
    await refresh_lag(gauge, env.engine, PARTITIONS)
    assert all(lag(metrics, name) == head for name in PROJECTIONS)

    await env.project()
    await refresh_lag(gauge, env.engine, PARTITIONS)
    assert all(lag(metrics, name) == 0 for name in PROJECTIONS)


async def test_projection_lag_is_counted_from_what_is_new_when_partitions_are_quiet(env: Env) -> None:
    """One busy conversation, every other partition quiet: a refresh of a caught-up worker reads only
    the events appended since the last refresh (it read every event after the quiet partitions' old
    checkpoints before), and the counts stay exact as the projector falls behind, catches up, and a
    checkpoint is moved back."""
    counter = LagCounter(PARTITIONS)
    await env.start("busy", "group", ["a", "b"], title="Busy")
    for i in range(30):
        await env.send("busy", "a", f"message {i}")
    head = (await env.store.head()).position
    assert all(n == head for n in (await counter.pending(env.engine)).values())
    assert counter.read == head

    await env.project()
    assert all(n == 0 for n in (await counter.pending(env.engine)).values())
    await env.send("busy", "b", "one more")
    await env.send("busy", "a", "and another")
    assert all(n == 2 for n in (await counter.pending(env.engine)).values())
    assert counter.read == 2  # the 2 new events, not the 30 before them

    await env.project()
    assert all(n == 0 for n in (await counter.pending(env.engine)).values())
    assert counter.read == 0

    # An operator moves one projection's checkpoints back to 0: its lag is every event again.
    async with env.engine.begin() as conn:
        await conn.execute(update(checkpoints).where(checkpoints.c.projection == "chat").values(position=0))
    counts = await counter.pending(env.engine)
    head = (await env.store.head()).position
    assert counts["chat"] == head
    assert all(counts[name] == 0 for name in PROJECTIONS if name != "chat")
