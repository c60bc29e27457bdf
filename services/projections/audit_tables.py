"""The audit read model's tables (docs/audit.md), built like the chat tables so that
`projections rebuild audit` can create `*_rebuild` copies of the same shape.

- rm_audit_events: every event, with the conversation it belongs to and a readable summary;
- rm_audit_event_users: (user, position) for every person an event involves (actor, sender,
  member, target …): the index behind the `user_id` filter;
- rm_audit_membership: who could see a conversation over which intervals (left_* NULL while the
  stay is open). Intervals are keyed by the position of the event that opened them.
Canonical copies are created by the migration 0008_audit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Index, MetaData, PrimaryKeyConstraint, String, Table, Text

from shared.store.tables import UtcDateTime

ID = 200  # shared.events.fields.ID_MAX


@dataclass(frozen=True, slots=True)
class AuditTables:
    events: Table
    event_users: Table
    membership: Table

    @property
    def all(self) -> tuple[Table, ...]:
        return (self.events, self.event_users, self.membership)


def build_audit_tables(meta: MetaData, suffix: str = "", *, indexes: bool = True) -> AuditTables:
    def name(base: str) -> str:
        return f"{base}{suffix}"

    def ix(table: str, *columns: str) -> list[Index]:
        return [Index(f"ix_{name(table)}_{'_'.join(columns)}", *columns)] if indexes else []

    def pk(table: str, *columns: str) -> PrimaryKeyConstraint:
        return PrimaryKeyConstraint(*columns, name=f"{name(table)}_pkey")

    events = Table(
        name("rm_audit_events"),
        meta,
        Column("position", BigInteger, nullable=False, autoincrement=False),
        # Times as ISO-8601 UTC text (hashing.format_time: fixed width, so text order is time order)
        # and the payload as its canonical JSON text (the chain's bytes): an export hands them out
        # as they are, with no per-row conversion on either side (issue #7's 50,000 events/s).
        Column("recorded_at", String(32), nullable=False),
        Column("occurred_at", String(32), nullable=False),
        Column("actor", String(ID), nullable=False),
        Column("stream_id", String(ID), nullable=False),
        Column("type", String(100), nullable=False),
        Column("conversation_id", String(ID), nullable=True),
        Column("summary", Text, nullable=False),
        Column("payload", Text, nullable=False),
        Column("hash", String(64), nullable=False),
        pk("rm_audit_events", "position"),
        # Every filter pages by position: (filter column, position) serves both.
        *ix("rm_audit_events", "conversation_id", "position"),
        *ix("rm_audit_events", "type", "position"),
        *ix("rm_audit_events", "recorded_at"),
    )
    event_users = Table(
        name("rm_audit_event_users"),
        meta,
        Column("user_id", String(ID), nullable=False),
        Column("position", BigInteger, nullable=False, autoincrement=False),
        pk("rm_audit_event_users", "user_id", "position"),
    )
    membership = Table(
        name("rm_audit_membership"),
        meta,
        Column("conversation_id", String(ID), nullable=False),
        Column("user_id", String(ID), nullable=False),
        Column("joined_position", BigInteger, nullable=False, autoincrement=False),
        Column("joined_at", UtcDateTime, nullable=False),
        Column("left_position", BigInteger, nullable=True),
        Column("left_at", UtcDateTime, nullable=True),
        pk("rm_audit_membership", "conversation_id", "user_id", "joined_position"),
        *ix("rm_audit_membership", "user_id"),
    )
    return AuditTables(events, event_users, membership)
