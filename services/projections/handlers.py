"""Event handlers of the projections worker: the read models (conversations, messages,
receipts, directory, search, audit, support queues and metrics).

The seam: the worker runtime calls the handler that build_handler() returns for every event of the
projections consumer. Until the projections handlers are written, each event is logged and counted
(`ledgerline_worker_events_seen_total{kind="projections"}` on /metrics) and acknowledged.
"""

from __future__ import annotations

from services.common.counting_handler import counting_handler
from shared.broker.consume import Handler
from shared.metrics import MetricsRegistry

KIND = "projections"


def build_handler(metrics: MetricsRegistry) -> Handler:
    return counting_handler(KIND, metrics)
