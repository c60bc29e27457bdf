"""The tickets worker's own tables (services/tickets/tables.py): agents, tickets (loads and queues),
SLA timers.

Revision ID: 0007_tickets
Revises: 0006_support_read_models
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from shared.store.tables import UtcDateTime

revision = "0007_tickets"
down_revision = "0006_support_read_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tk_agents",
        sa.Column("agent_id", sa.String(200), nullable=False),
        sa.Column("segment", sa.String(32), nullable=True),
        sa.Column("lines", sa.String(16), nullable=False),
        sa.Column("is_agent", sa.Boolean, nullable=False),
        sa.Column("is_supervisor", sa.Boolean, nullable=False),
        sa.Column("explicit_available", sa.Boolean, nullable=True),
        sa.Column("online", sa.Boolean, nullable=False),
        sa.Column("last_assigned", sa.BigInteger, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("agent_id", name="tk_agents_pkey"),
    )
    op.create_table(
        "tk_tickets",
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=True),
        sa.Column("requester_id", sa.String(200), nullable=False),
        sa.Column("segment", sa.String(32), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(200), nullable=True),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("queue_due_at", UtcDateTime, nullable=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", name="tk_tickets_pkey"),
    )
    op.create_index("tk_tickets_conversation", "tk_tickets", ["conversation_id", "opened_at"])
    op.create_index("tk_tickets_assignee", "tk_tickets", ["assignee", "status"])
    op.create_index("tk_tickets_queue", "tk_tickets", ["line", "segment", "status", "assignee"])
    op.create_table(
        "tk_timers",
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("clock", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("due_at", UtcDateTime, nullable=False),
        sa.Column("fired", sa.Boolean, nullable=False),
        sa.Column("claimed_until", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("ticket_id", "clock", "kind", name="tk_timers_pkey"),
    )
    op.create_index("tk_timers_due", "tk_timers", ["fired", "due_at"])


def downgrade() -> None:
    op.drop_table("tk_timers")
    op.drop_table("tk_tickets")
    op.drop_table("tk_agents")
