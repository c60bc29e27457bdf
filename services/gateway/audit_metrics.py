"""Metrics of the hash-chain verification (GET /v1/audit/verify), created with the app so that they are on
/metrics before the first verification (an alert on a series that does not exist yet never fires)."""

from __future__ import annotations

from shared.metrics import MetricsRegistry
from shared.store.verify import VerifyResult


class AuditChainMetrics:
    def __init__(self, metrics: MetricsRegistry) -> None:
        self.failures = metrics.counter(
            "audit_chain_verify_failures", "Verifications of the event hash chain that found it broken"
        )
        self.last_verified = metrics.gauge(
            "audit_chain_last_verified_position", "Head position of the last verification that found the chain intact"
        )

    def record(self, result: VerifyResult) -> None:
        if result.ok:
            self.last_verified.set(result.head_position)
        else:
            self.failures.inc()
