"""Event handlers of the delivery worker: fan-out of conversation events to live connections as
realtime frames, receipts to senders, offline notifications (docs/realtime.md).

The worker runtime calls the handler that build_handler() returns with each batch of the
conversation events (fanout.CONVERSATION_TYPES; the broker filters the rest). Every event is
counted (`ledgerline_worker_events_seen_total{kind="delivery"}` on /metrics); the fan-out
(services/delivery/fanout.py) applies the conversation events to the delivery view and publishes.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.worker_service import WorkerContext
from services.delivery.service import DeliveryRealtime
from shared.broker.consume import Handler
from shared.events.envelope import RecordedEvent
from shared.metrics import MetricsRegistry

KIND = "delivery"


def delivery_handler(
    realtime: DeliveryRealtime, engine: AsyncEngine, partitions: int, metrics: MetricsRegistry
) -> Handler:
    seen = metrics.counter("worker_events_seen", "Events a worker received, by kind and type", ["kind", "type"])
    fanout = realtime.handler(engine, partitions, metrics)

    async def handle(batch: list[RecordedEvent]) -> None:
        for event in batch:
            seen.labels(KIND, event.type).inc()
        await fanout(batch)

    return handle


def build_handler(context: WorkerContext, realtime: DeliveryRealtime | None = None) -> Handler:
    """Without `realtime` (no broker for the ephemeral path) the view is kept and nothing is published."""
    return delivery_handler(
        realtime or DeliveryRealtime(None), context.engine, context.settings.partitions, context.metrics
    )
