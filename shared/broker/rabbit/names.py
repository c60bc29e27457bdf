"""RabbitMQ names. The defaults are the public contract (CONTRACT.md); tests pass a namespace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RabbitNames:
    exchange: str = "ledgerline.events"
    dead_exchange: str = "ledgerline.dead"
    ephemeral_exchange: str = "ledgerline.ephemeral"
    queue_prefix: str = "ledgerline"

    @classmethod
    def for_namespace(cls, namespace: str | None) -> RabbitNames:
        if not namespace:
            return cls()
        return cls(
            exchange=f"ledgerline_{namespace}.events",
            dead_exchange=f"ledgerline_{namespace}.dead",
            ephemeral_exchange=f"ledgerline_{namespace}.ephemeral",
            queue_prefix=f"ledgerline_{namespace}",
        )

    def routing_key(self, type_: str, partition: int) -> str:
        return f"{type_}.{partition}"

    def queue(self, kind: str, partition: int) -> str:
        return f"{self.queue_prefix}.{kind}.p{partition}"

    def dead_queue(self, kind: str) -> str:
        return f"{self.queue_prefix}.dead.{kind}"

    def dead_routing_key(self, kind: str, type_: str) -> str:
        return f"{kind}.{type_}"


def binding_pattern(subject: str) -> str:
    """A NATS-style subject pattern as an AMQP topic pattern: `*` is the same, `>` becomes `#`."""
    return ".".join("#" if token == ">" else token for token in subject.split("."))
