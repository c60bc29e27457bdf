"""The delivery worker's own membership view (migration 0005_delivery).

Only what fan-out needs: who is an active member of each conversation, and each member's watermarks
(so that a receipt frame can carry both and a lower watermark moves nothing). `dl_checkpoints` holds,
per partition, the position of the last event applied (inclusive): an event at or below it was
already applied and its frames already published.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, PrimaryKeyConstraint, String, Table

from shared.store.tables import metadata

ID = 200  # shared.events.fields.ID_MAX

members = Table(
    "dl_members",
    metadata,
    Column("conversation_id", String(ID), nullable=False),
    Column("user_id", String(ID), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("delivered_seq", BigInteger, nullable=False),
    Column("read_seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("conversation_id", "user_id", name="dl_members_pkey"),
)

checkpoints = Table(
    "dl_checkpoints",
    metadata,
    Column("partition", Integer, nullable=False),
    Column("position", BigInteger, nullable=False),
    PrimaryKeyConstraint("partition", name="dl_checkpoints_pkey"),
)
