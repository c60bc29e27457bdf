"""The audit read model (services/projections/audit_tables.py): every event with its summary, the
people each event involves, and membership intervals per conversation; and the keys that seal
personal fields per person (shared/store/personal.py).

The same shapes are built by services/projections/audit_tables.py (`build_audit_tables`) for a
rebuild's fresh copies.

Revision ID: 0008_audit
Revises: 0007_tickets
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from shared.store.tables import UtcDateTime

revision = "0008_audit"
down_revision = "0007_tickets"
branch_labels = None
depends_on = None

ID = 200


def upgrade() -> None:
    op.create_table(
        "rm_audit_events",
        sa.Column("position", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        sa.Column("occurred_at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(ID), nullable=False),
        sa.Column("stream_id", sa.String(ID), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("conversation_id", sa.String(ID), nullable=True),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("position", name="rm_audit_events_pkey"),
    )
    op.create_index("ix_rm_audit_events_conversation_id_position", "rm_audit_events", ["conversation_id", "position"])
    op.create_index("ix_rm_audit_events_type_position", "rm_audit_events", ["type", "position"])
    op.create_index("ix_rm_audit_events_recorded_at", "rm_audit_events", ["recorded_at"])
    op.create_table(
        "rm_audit_event_users",
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("user_id", "position", name="rm_audit_event_users_pkey"),
    )
    op.create_table(
        "rm_audit_membership",
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("joined_position", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("joined_at", UtcDateTime, nullable=False),
        sa.Column("left_position", sa.BigInteger, nullable=True),
        sa.Column("left_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", "joined_position", name="rm_audit_membership_pkey"),
    )
    op.create_index("ix_rm_audit_membership_user_id", "rm_audit_membership", ["user_id"])
    # Keys sealing personal fields (shared/store/personal.py); NULL once destroyed by an erasure.
    op.create_table(
        "personal_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(ID), nullable=False),
        sa.Column("scope", sa.String(ID), nullable=False),
        sa.Column("key", sa.LargeBinary, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("erased_at", UtcDateTime, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="personal_keys_pkey"),
    )
    op.create_index("ix_personal_keys_subject_id", "personal_keys", ["subject_id"])
    op.create_index("ix_personal_keys_scope", "personal_keys", ["scope"])


def downgrade() -> None:
    op.drop_table("personal_keys")
    op.drop_table("rm_audit_membership")
    op.drop_table("rm_audit_event_users")
    op.drop_table("rm_audit_events")
