"""File metadata of the gateway's content-addressed store (services/gateway/files/catalogue.py):
one row per upload, so that messages can attach files by id. Not an event: docs/chat-api.md.

Revision ID: 0004_files
Revises: 0003_chat_read_models
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from shared.store.tables import UtcDateTime

revision = "0004_files"
down_revision = "0003_chat_read_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("file_id", sa.String(200), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("mime", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("uploader_id", sa.String(200), nullable=False),
        sa.Column("uploaded_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("file_id", name="files_pkey"),
    )
    op.create_index("files_uploader_idx", "files", ["uploader_id"])


def downgrade() -> None:
    op.drop_index("files_uploader_idx", table_name="files")
    op.drop_table("files")
