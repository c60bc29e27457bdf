"""A counter of key erasures (shared/store/personal.py): every erasure or retention run that destroys
keys adds one to it in the same transaction, so that each process checks with one read of one row
whether any key it has cached was destroyed, instead of reading its keys again.

Revision ID: 0009_key_erasures
Revises: 0008_audit
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_key_erasures"
down_revision = "0008_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "personal_key_erasures",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="personal_key_erasures_pkey"),
    )
    op.bulk_insert(table, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("personal_key_erasures")
