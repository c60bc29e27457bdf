"""`ledgerline_projection_lag_events{projection}`: events a read model has not applied yet, per projection,
on /metrics from the start and back to 0 once the projector has caught up."""

from __future__ import annotations

import test_read_models_support as support
from test_read_models_support import Env

from services.projections.lag_metrics import lag_gauge, refresh_lag
from services.projections.tables import PROJECTIONS
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
