"""The support read models: rm_tickets (one row per ticket: state, SLA due times, the facts the
metrics need) and rm_ticket_events (every ticket event in stream order, the agents' history).

The same shapes are built by services/projections/support_tables.py for a rebuild's fresh copies;
tests/integration/test_read_models_tickets.py checks that a rebuild keeps the columns.

Revision ID: 0006_support_read_models
Revises: 0005_delivery
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from shared.store.tables import Json, UtcDateTime

revision = "0006_support_read_models"
down_revision = "0005_delivery"
branch_labels = None
depends_on = None

ID = 200


def upgrade() -> None:
    op.create_table(
        "rm_tickets",
        sa.Column("ticket_id", sa.String(ID), nullable=False),
        sa.Column("conversation_id", sa.String(ID), nullable=True),
        sa.Column("requester_id", sa.String(ID), nullable=False),
        sa.Column("segment", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(60), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("assignee_id", sa.String(ID), nullable=True),
        sa.Column("handler_id", sa.String(ID), nullable=True),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("first_response_at", UtcDateTime, nullable=True),
        sa.Column("first_response_by", sa.String(ID), nullable=True),
        sa.Column("agent_replies", sa.Integer, nullable=False),
        sa.Column("replies_at_resolve", sa.Integer, nullable=True),
        sa.Column("first_resolved_at", UtcDateTime, nullable=True),
        sa.Column("resolved_at", UtcDateTime, nullable=True),
        sa.Column("first_reopened_at", UtcDateTime, nullable=True),
        sa.Column("reopen_count", sa.Integer, nullable=False),
        sa.Column("closed_at", UtcDateTime, nullable=True),
        sa.Column("pending_since", UtcDateTime, nullable=True),
        sa.Column("pending_periods", Json, nullable=False),
        sa.Column("waiting_since", UtcDateTime, nullable=True),
        sa.Column("tags", Json, nullable=False),
        sa.Column("rating", sa.Integer, nullable=True),
        sa.Column("rating_comment", sa.Text, nullable=True),
        sa.Column("rated_at", UtcDateTime, nullable=True),
        sa.Column("clocks", Json, nullable=False),
        sa.Column("next_due_at", UtcDateTime, nullable=True),
        sa.Column("next_due_clock", sa.String(20), nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name="rm_tickets_pkey"),
    )
    op.create_index("ix_rm_tickets_status_line_segment", "rm_tickets", ["status", "line", "segment"])
    op.create_index("ix_rm_tickets_opened_at", "rm_tickets", ["opened_at"])
    op.create_index("ix_rm_tickets_first_resolved_at", "rm_tickets", ["first_resolved_at"])
    op.create_index("ix_rm_tickets_requester_id", "rm_tickets", ["requester_id"])
    op.create_table(
        "rm_ticket_events",
        sa.Column("ticket_id", sa.String(ID), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("type", sa.String(60), nullable=False),
        sa.Column("occurred_at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String(ID), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", "version", name="rm_ticket_events_pkey"),
    )


def downgrade() -> None:
    op.drop_table("rm_ticket_events")
    op.drop_table("rm_tickets")
