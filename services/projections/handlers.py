"""Event handlers of the projections worker: the chat read models (services/projections/projector.py).

The worker runtime calls the handler that build_handler() returns with each batch (one partition,
in order, at least once). Every event is counted (`ledgerline_worker_events_seen_total
{kind="projections"}` on /metrics); the projector applies the types its read models need, skips
what their checkpoints already cover and advances the checkpoints past the rest.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.worker_service import WorkerContext
from shared.broker.consume import Handler
from shared.events.envelope import RecordedEvent
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

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


def build_handler(context: WorkerContext) -> Handler:
    """The projector writes through the worker service's engine (closed by the service on stop)."""
    return projections_handler(context.engine, context.settings.partitions, context.metrics)
