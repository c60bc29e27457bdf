"""The event store: the append-only events table, named checkpoints, immutability triggers.

Revision ID: 0001_event_store
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from shared.store.tables import Json, UtcDateTime

revision = "0001_event_store"
down_revision = None
branch_labels = None
depends_on = None

PG_IMMUTABLE = """
CREATE OR REPLACE FUNCTION ledgerline_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledgerline: the events table is append-only; % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION ledgerline_events_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION ledgerline_events_immutable();
"""

SQLITE_IMMUTABLE = [
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'ledgerline: the events table is append-only; UPDATE is not allowed'); END""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
       BEGIN SELECT RAISE(ABORT, 'ledgerline: the events table is append-only; DELETE is not allowed'); END""",
]


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("stream_version", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("schema_version", sa.SmallInteger, nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("correlation_id", sa.Uuid, nullable=True),
        sa.Column("causation_id", sa.Uuid, nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        sa.UniqueConstraint("stream_id", "stream_version", name="uq_events_stream_version"),
    )
    op.create_index("ix_events_type_position", "events", ["type", "position"])
    op.create_table(
        "checkpoints",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_IMMUTABLE)
    else:
        for statement in SQLITE_IMMUTABLE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_no_truncate ON events")
        op.execute("DROP TRIGGER IF EXISTS events_no_update_delete ON events")
        op.execute("DROP FUNCTION IF EXISTS ledgerline_events_immutable()")
    op.drop_table("checkpoints")
    op.drop_table("events")
