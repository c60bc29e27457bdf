"""JetStream names. The defaults are the public contract (CONTRACT.md); tests pass a namespace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class NatsNames:
    stream: str = "LEDGERLINE_EVENTS"
    subject_prefix: str = "ledgerline.events"
    dead_stream: str = "LEDGERLINE_DEAD_LETTERS"
    dead_prefix: str = "ledgerline.dead"

    @classmethod
    def for_namespace(cls, namespace: str | None) -> NatsNames:
        """Names that cannot overlap with the contract's or another namespace's (streams may not share
        subjects), for tests and side-by-side installations on one server."""
        if not namespace:
            return cls()
        upper = namespace.upper().replace("-", "_")
        return cls(
            stream=f"LEDGERLINE_EVENTS_{upper}",
            subject_prefix=f"ledgerline_{namespace}.events",
            dead_stream=f"LEDGERLINE_DEAD_LETTERS_{upper}",
            dead_prefix=f"ledgerline_{namespace}.dead",
        )

    def event_subject(self, type_: str, partition: int) -> str:
        return f"{self.subject_prefix}.{type_}.{partition}"

    def partition_filter(self, partition: int) -> str:
        return f"{self.subject_prefix}.*.{partition}"

    def dead_subject(self, kind: str, type_: str) -> str:
        return f"{self.dead_prefix}.{kind}.{type_}"

    def durable(self, kind: str, partition: int) -> str:
        return f"{kind}-p{partition}"

    def type_of(self, subject: str) -> str:
        """The event type in `<prefix>.<Type>.<p>`."""
        return subject[len(self.subject_prefix) + 1 :].rpartition(".")[0]
