"""The worker runtime: live worker instances and partition leases (shared/broker/tables.py).

Revision ID: 0002_worker_runtime
Revises: 0001_event_store
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from shared.store.tables import UtcDateTime

revision = "0002_worker_runtime"
down_revision = "0001_event_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_instances",
        sa.Column("kind", sa.String(100), primary_key=True),
        sa.Column("instance_id", sa.String(200), primary_key=True),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("last_seen", UtcDateTime, nullable=False),
    )
    op.create_table(
        "partition_leases",
        sa.Column("kind", sa.String(100), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("expires_at", UtcDateTime, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("partition_leases")
    op.drop_table("worker_instances")
