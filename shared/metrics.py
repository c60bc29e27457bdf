"""Prometheus helpers. Metrics are created against a registry that is passed in, never the global one,
so tests and several services in one process do not collide."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

NAMESPACE = "ledgerline"
# Latency buckets from 0.5 ms to 10 s: appends and handlers live in the low milliseconds.
LATENCY_BUCKETS: Sequence[float] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class MetricsRegistry:
    """A CollectorRegistry with constructors that apply the `ledgerline_` namespace."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

    def histogram(
        self, name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(name, doc, labels, namespace=NAMESPACE, registry=self.registry, buckets=buckets)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type, for a /metrics endpoint."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
