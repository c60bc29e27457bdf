"""Header names the adapters write on dead letters, the same on NATS and RabbitMQ."""

from __future__ import annotations

from enum import StrEnum


class DeadLetterHeader(StrEnum):
    ERROR = "Ledgerline-Error"
    KIND = "Ledgerline-Kind"
    EVENT_ID = "Ledgerline-Event-Id"
    TYPE = "Ledgerline-Type"
    PARTITION = "Ledgerline-Partition"
    DELIVERIES = "Ledgerline-Deliveries"
    ORIGIN = "Ledgerline-Origin"
    """Where it was consumed from: the NATS subject or the RabbitMQ queue."""
