"""The worker runtime's Prometheus metrics, created once per registry (several workers may share one)."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import MetricsRegistry

_by_registry: weakref.WeakKeyDictionary[MetricsRegistry, WorkerMetrics] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class WorkerMetrics:
    lag: Gauge
    handled: Counter
    handler_seconds: Histogram
    event_age_seconds: Histogram
    handler_failures: Counter
    redeliveries: Counter
    dead_lettered: Counter
    duplicates: Counter
    lost_deliveries: Counter
    partitions_owned: Gauge

    @classmethod
    def of(cls, registry: MetricsRegistry) -> WorkerMetrics:
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = cls._create(registry)
        return found

    @classmethod
    def _create(cls, r: MetricsRegistry) -> WorkerMetrics:
        return cls(
            lag=r.gauge("worker_consumer_lag", "Events waiting in a partition", ["kind", "partition"]),
            handled=r.counter("worker_events_handled", "Events handled and acknowledged", ["kind"]),
            handler_seconds=r.histogram("worker_handler_seconds", "Duration of one handler call", ["kind"]),
            event_age_seconds=r.histogram(
                "worker_event_age_seconds",
                "From an event's record time in the store to its receipt here (relay, broker and fetch)",
                ["kind"],
                buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            ),
            handler_failures=r.counter("worker_handler_failures", "Handler calls that raised", ["kind"]),
            redeliveries=r.counter("worker_redeliveries", "Events delivered more than once", ["kind"]),
            dead_lettered=r.counter("worker_dead_lettered", "Events moved to the dead letters", ["kind"]),
            duplicates=r.counter("worker_duplicates_skipped", "Already-handled events skipped", ["kind"]),
            lost_deliveries=r.counter(
                "worker_lost_deliveries", "Deliveries that never arrived (redelivered in order after a wait)", ["kind"]
            ),
            partitions_owned=r.gauge(
                "worker_partitions_owned", "Partitions this instance consumes", ["kind", "instance"]
            ),
        )
