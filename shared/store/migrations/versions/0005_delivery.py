"""The delivery worker's own view (services/delivery/tables.py): membership with watermarks, and a
checkpoint per partition written in the same transaction as the view's changes.

Revision ID: 0005_delivery
Revises: 0004_files
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_delivery"
down_revision = "0004_files"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dl_members",
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("delivered_seq", sa.BigInteger, nullable=False),
        sa.Column("read_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", name="dl_members_pkey"),
    )
    op.create_table(
        "dl_checkpoints",
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("partition", name="dl_checkpoints_pkey"),
    )


def downgrade() -> None:
    op.drop_table("dl_checkpoints")
    op.drop_table("dl_members")
