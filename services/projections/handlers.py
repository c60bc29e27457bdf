"""Event handlers of the projections worker: the chat read models (services/projections/projector.py).

The worker runtime calls the handler that build_handler() returns with each batch (one partition,
in order, at least once). Every event is counted (`ledgerline_worker_events_seen_total
{kind="projections"}` on /metrics); the projector applies the types its read models need, skips
what their checkpoints already cover and advances the checkpoints past the rest.
"""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from shared.broker.consume import Handler
from shared.config import load_settings
from shared.events.envelope import RecordedEvent
from shared.logging import get_logger
from shared.metrics import MetricsRegistry
from shared.store.engine import _configure_sqlite, _dumps_str, create_engine, is_sqlite

KIND = "projections"
log = get_logger(__name__)


def projections_handler(engine: AsyncEngine, partitions: int, metrics: MetricsRegistry) -> Handler:
    from services.projections.projector import Projector

    projector = Projector(engine, partitions=partitions)
    seen = metrics.counter("worker_events_seen", "Events a worker received, by kind and type", ["kind", "type"])

    async def handle(batch: list[RecordedEvent]) -> None:
        for event in batch:
            seen.labels(KIND, event.type).inc()
        await projector.apply(batch)
        if batch:
            log.debug("projected", first=batch[0].position, last=batch[-1].position, events=len(batch))

    return handle


def build_handler(metrics: MetricsRegistry) -> Handler:
    """The worker service's seam passes only the metrics registry, so the projector opens its own
    engine from the same settings. The seam has no shutdown hook to dispose it: on SQLite the pool is
    a NullPool, because a pooled aiosqlite connection left open keeps a non-daemon thread alive and
    the process would not exit; opening the SQLite file per batch costs well under a millisecond.
    (Asked for in the report: let worker_service pass its engine to build_handler.)"""
    settings = load_settings()
    url = settings.resolved_database_url
    if not is_sqlite(url):
        return projections_handler(create_engine(url, pool_size=2), settings.partitions, metrics)
    engine = create_async_engine(url, poolclass=NullPool, json_serializer=_dumps_str, json_deserializer=orjson.loads)
    _configure_sqlite(engine)
    return projections_handler(engine, settings.partitions, metrics)
