"""The chat read models: conversations, members with receipt watermarks, messages, object links,
message files, the user directory, per-(projection, partition) checkpoints and search
(PostgreSQL: tsvector russian || english with a GIN index; SQLite: an FTS5 table).

The same shapes are built by services/projections/tables.py (`build_tables`) for a rebuild's fresh
copies; tests/integration/test_read_models_rebuild.py checks that both agree.

Revision ID: 0003_chat_read_models
Revises: 0002_worker_runtime
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from shared.store.tables import Json, UtcDateTime

revision = "0003_chat_read_models"
down_revision = "0002_worker_runtime"
branch_labels = None
depends_on = None

ID = 200


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"{table}_pkey")


def upgrade() -> None:
    op.create_table(
        "rm_checkpoints",
        sa.Column("projection", sa.String(60), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        _pk("rm_checkpoints", "projection", "partition"),
    )
    op.create_table(
        "rm_conversations",
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("avatar_color", sa.String(7), nullable=True),
        sa.Column("created_by", sa.String(ID), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("last_message_preview", sa.Text, nullable=True),
        sa.Column("last_message_at", UtcDateTime, nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        _pk("rm_conversations", "conversation_id"),
    )
    op.create_table(
        "rm_members",
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("joined_at", UtcDateTime, nullable=False),
        sa.Column("left_at", UtcDateTime, nullable=True),
        sa.Column("delivered_seq", sa.Integer, nullable=False),
        sa.Column("read_seq", sa.Integer, nullable=False),
        _pk("rm_members", "conversation_id", "user_id"),
    )
    op.create_index("ix_rm_members_user_id_active", "rm_members", ["user_id", "active"])
    op.create_table(
        "rm_messages",
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("message_id", sa.String(ID), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("sender_id", sa.String(ID), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("attachments", Json, nullable=False),
        sa.Column("links", Json, nullable=False),
        sa.Column("reply_to", sa.String(ID), nullable=True),
        sa.Column("sent_at", UtcDateTime, nullable=False),
        sa.Column("edited_at", UtcDateTime, nullable=True),
        sa.Column("retracted", sa.Boolean, nullable=False),
        _pk("rm_messages", "conversation_id", "seq"),
    )
    op.create_index("ix_rm_messages_position", "rm_messages", ["position"], unique=True)
    op.create_index("ix_rm_messages_message_id", "rm_messages", ["message_id"])
    op.create_table(
        "rm_object_links",
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("object_id", sa.String(ID), nullable=False),
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        _pk("rm_object_links", "kind", "object_id", "conversation_id", "seq"),
    )
    op.create_table(
        "rm_message_files",
        sa.Column("file_id", sa.String(ID), nullable=False),
        sa.Column("conversation_id", sa.String(ID), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        _pk("rm_message_files", "file_id", "conversation_id", "seq"),
    )
    op.create_table(
        "rm_users",
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_folded", sa.Text, nullable=False),
        sa.Column("roles", Json, nullable=False),
        sa.Column("segment", sa.String(20), nullable=True),
        sa.Column("lines", Json, nullable=False),
        sa.Column("first_seen", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        _pk("rm_users", "user_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TABLE rm_search (position BIGINT NOT NULL, conversation_id VARCHAR(200) NOT NULL, "
            "seq INTEGER NOT NULL, document TSVECTOR NOT NULL, CONSTRAINT rm_search_pkey PRIMARY KEY (position))"
        )
        op.execute("CREATE INDEX ix_rm_search_document ON rm_search USING gin (document)")
    else:
        op.execute("CREATE VIRTUAL TABLE rm_search USING fts5(text, tokenize = 'unicode61 remove_diacritics 2')")


def downgrade() -> None:
    op.execute("DROP TABLE rm_search")
    for table in (
        "rm_users",
        "rm_message_files",
        "rm_object_links",
        "rm_messages",
        "rm_members",
        "rm_conversations",
        "rm_checkpoints",
    ):
        op.drop_table(table)
