"""The support read models' tables (docs/support-metrics.md), built beside the chat tables by
`tables.build_tables` so that a rebuild makes `*_rebuild` copies of exactly the same shape.

`rm_tickets` is one row per ticket: its current state plus the facts the metrics need (first
response, first resolution, replies before it, the first reopen after it, pending periods before it,
the rating). `rm_ticket_events` is every ticket event in stream order: the agents' history.
Migration: 0006_support_read_models (the same shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text

from shared.store.tables import Json, UtcDateTime

ID = 200  # shared.events.fields.ID_MAX


@dataclass(frozen=True, slots=True)
class SupportTables:
    tickets: Table
    events: Table

    @property
    def all(self) -> tuple[Table, ...]:
        return (self.tickets, self.events)


def build_support_tables(meta: MetaData, suffix: str = "", *, indexes: bool = True) -> SupportTables:
    def name(base: str) -> str:
        return f"{base}{suffix}"

    def ix(table: str, *columns: str) -> list[Index]:
        return [Index(f"ix_{name(table)}_{'_'.join(columns)}", *columns)] if indexes else []

    def pk(table: str, *columns: str) -> PrimaryKeyConstraint:
        return PrimaryKeyConstraint(*columns, name=f"{table}_pkey")

    tickets = Table(
        name("rm_tickets"),
        meta,
        Column("ticket_id", String(ID), nullable=False),
        Column("conversation_id", String(ID), nullable=True),
        Column("requester_id", String(ID), nullable=False),
        Column("segment", String(20), nullable=False),
        Column("channel", String(60), nullable=False),
        Column("subject", Text, nullable=False),
        Column("priority", String(10), nullable=False),
        Column("line", Integer, nullable=False),
        Column("status", String(10), nullable=False),
        Column("assignee_id", String(ID), nullable=True),
        # The agent the metrics attribute the ticket to: the assignee at the first resolution, or the
        # assignee now while the ticket was never resolved (docs/decisions/0006-*).
        Column("handler_id", String(ID), nullable=True),
        Column("opened_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("first_response_at", UtcDateTime, nullable=True),
        Column("first_response_by", String(ID), nullable=True),
        Column("agent_replies", Integer, nullable=False),
        Column("replies_at_resolve", Integer, nullable=True),
        Column("first_resolved_at", UtcDateTime, nullable=True),
        Column("resolved_at", UtcDateTime, nullable=True),
        Column("first_reopened_at", UtcDateTime, nullable=True),
        Column("reopen_count", Integer, nullable=False),
        Column("closed_at", UtcDateTime, nullable=True),
        Column("pending_since", UtcDateTime, nullable=True),
        # [[start, end], …] ISO times: the pending periods before the first resolution (AHT excludes them).
        Column("pending_periods", Json, nullable=False),
        # Since when the requester waits for the desk (opened, or wrote after the last agent reply).
        Column("waiting_since", UtcDateTime, nullable=True),
        Column("tags", Json, nullable=False),
        Column("rating", Integer, nullable=True),
        Column("rating_comment", Text, nullable=True),
        Column("rated_at", UtcDateTime, nullable=True),
        # {clock: {"state": running|paused|fulfilled|breached, "due_at": ISO|null}} as the clock events left them.
        Column("clocks", Json, nullable=False),
        # The earliest due time of a running or breached clock: the queues' SLA order, the overdue backlog.
        Column("next_due_at", UtcDateTime, nullable=True),
        Column("next_due_clock", String(20), nullable=True),
        Column("version", Integer, nullable=False),
        pk(name("rm_tickets"), "ticket_id"),
        *ix("rm_tickets", "status", "line", "segment"),
        *ix("rm_tickets", "opened_at"),
        *ix("rm_tickets", "first_resolved_at"),
        *ix("rm_tickets", "requester_id"),
    )
    ticket_events = Table(
        name("rm_ticket_events"),
        meta,
        Column("ticket_id", String(ID), nullable=False),
        Column("version", Integer, nullable=False),
        Column("position", BigInteger, nullable=False),
        Column("type", String(60), nullable=False),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("actor", String(ID), nullable=False),
        Column("payload", Json, nullable=False),
        pk(name("rm_ticket_events"), "ticket_id", "version"),
    )
    return SupportTables(tickets, ticket_events)
