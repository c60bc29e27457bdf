"""Events' payload and metadata as `json` (the text as written) instead of `jsonb` on PostgreSQL;
the unused index on (type, position) dropped on both databases.

The store writes canonical JSON once and hashes those very bytes (shared/store/hashing.py); jsonb
parsed and re-encoded each of them on insert and back to text on every read, which was about a
seventh of a group-commit batch's server time and of a page read's. Nothing queries inside the
events' JSON (read models keep jsonb). Decision 0022. SQLite keeps JSON text as before.

No query filters the events table by type (workers filter on the broker's subjects; the audit read
model has its own index), and that index cost ~7% of a batch's server time.

Rewrites the events table on PostgreSQL (ALTER COLUMN TYPE takes an exclusive lock while it runs);
row triggers do not fire, so the append-only trigger is not in the way and the hash chain is
unchanged: verification re-serializes what it reads, whatever the spacing of the stored text.

Revision ID: 0010_events_json_text
Revises: 0009_key_erasures
Create Date: 2026-12-03
"""

from alembic import op

revision = "0010_events_json_text"
down_revision = "0009_key_erasures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_type_position", table_name="events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE events ALTER COLUMN payload TYPE json USING payload::text::json, "
            "ALTER COLUMN metadata TYPE json USING metadata::text::json"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE events ALTER COLUMN payload TYPE jsonb USING payload::jsonb, "
            "ALTER COLUMN metadata TYPE jsonb USING metadata::jsonb"
        )
    op.create_index("ix_events_type_position", "events", ["type", "position"])
