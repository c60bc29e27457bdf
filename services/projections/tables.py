"""The chat read models' tables (docs/read-models.md), built by a function so that a rebuild can
create `*_rebuild` copies of exactly the same shape.

The canonical tables live on `shared.store.tables.metadata` and are created by the migration
0003_chat_read_models; the rebuild builds its copies on a private MetaData without secondary
indexes (bulk loading is faster without them) and creates the canonical indexes after the swap.
Primary keys are named `<table>_pkey` (PostgreSQL's default) so that a swapped-in copy can be given
the canonical constraint name. The search table is dialect-specific DDL: see search.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from services.projections.audit_tables import AuditTables, build_audit_tables
from services.projections.support_tables import SupportTables, build_support_tables
from shared.store.tables import Json, UtcDateTime, metadata

ID = 200  # shared.events.fields.ID_MAX


@dataclass(frozen=True, slots=True)
class ChatTables:
    """One complete set of read-model tables (canonical, or a rebuild copy)."""

    suffix: str
    conversations: Table
    members: Table
    messages: Table
    object_links: Table
    message_files: Table
    users: Table
    support: SupportTables
    audit: AuditTables

    @property
    def search(self) -> str:
        """The search table's name (not a SQLAlchemy Table: its DDL differs per dialect)."""
        return f"rm_search{self.suffix}"

    def of(self, projection: str) -> tuple[Table, ...]:
        """The tables a projection owns (what `projections rebuild NAME` replaces)."""
        if projection == "chat":
            return (self.conversations, self.members, self.messages, self.object_links, self.message_files)
        if projection == "directory":
            return (self.users,)
        if projection == "support":
            return self.support.all
        if projection == "audit":
            return self.audit.all
        if projection == "erasure":  # owns no table: it scrubs the others' rows
            return ()
        raise ValueError(f"unknown projection {projection!r}")


def _pk(name: str, *columns: str) -> PrimaryKeyConstraint:
    return PrimaryKeyConstraint(*columns, name=f"{name}_pkey")


def build_tables(meta: MetaData, suffix: str = "", *, indexes: bool = True) -> ChatTables:
    def name(base: str) -> str:
        return f"{base}{suffix}"

    def ix(table: str, *columns: str, unique: bool = False) -> list[Index]:
        return [Index(f"ix_{name(table)}_{'_'.join(columns)}", *columns, unique=unique)] if indexes else []

    conversations = Table(
        name("rm_conversations"),
        meta,
        Column("conversation_id", String(ID), nullable=False),
        Column("kind", String(20), nullable=False),
        Column("title", Text, nullable=False),
        Column("description", Text, nullable=False),
        Column("avatar_color", String(7), nullable=True),
        Column("created_by", String(ID), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("last_seq", Integer, nullable=False),
        Column("last_message_preview", Text, nullable=True),
        Column("last_message_at", UtcDateTime, nullable=True),
        # Activity time (creation, details, last message): the conversation list's order.
        Column("updated_at", UtcDateTime, nullable=False),
        _pk(name("rm_conversations"), "conversation_id"),
    )
    members = Table(
        name("rm_members"),
        meta,
        Column("conversation_id", String(ID), nullable=False),
        Column("user_id", String(ID), nullable=False),
        Column("active", Boolean, nullable=False),
        Column("joined_at", UtcDateTime, nullable=False),
        Column("left_at", UtcDateTime, nullable=True),
        # Receipt watermarks, inclusive: every message with seq <= them. Monotonic.
        Column("delivered_seq", Integer, nullable=False),
        Column("read_seq", Integer, nullable=False),
        _pk(name("rm_members"), "conversation_id", "user_id"),
        *ix("rm_members", "user_id", "active"),
    )
    messages = Table(
        name("rm_messages"),
        meta,
        Column("conversation_id", String(ID), nullable=False),
        Column("seq", Integer, nullable=False),
        Column("message_id", String(ID), nullable=False),
        # The MessageSent event's position: unique, stable across rebuilds; the search table's key.
        Column("position", BigInteger, nullable=False),
        Column("sender_id", String(ID), nullable=False),
        Column("text", Text, nullable=False),
        Column("attachments", Json, nullable=False),
        Column("links", Json, nullable=False),
        Column("reply_to", String(ID), nullable=True),
        Column("sent_at", UtcDateTime, nullable=False),
        Column("edited_at", UtcDateTime, nullable=True),
        Column("retracted", Boolean, nullable=False),
        _pk(name("rm_messages"), "conversation_id", "seq"),
        *ix("rm_messages", "position", unique=True),
        *ix("rm_messages", "message_id"),
    )
    object_links = Table(
        name("rm_object_links"),
        meta,
        Column("kind", String(20), nullable=False),
        Column("object_id", String(ID), nullable=False),
        Column("conversation_id", String(ID), nullable=False),
        Column("seq", Integer, nullable=False),
        _pk(name("rm_object_links"), "kind", "object_id", "conversation_id", "seq"),
    )
    message_files = Table(
        name("rm_message_files"),
        meta,
        Column("file_id", String(ID), nullable=False),
        Column("conversation_id", String(ID), nullable=False),
        Column("seq", Integer, nullable=False),
        _pk(name("rm_message_files"), "file_id", "conversation_id", "seq"),
    )
    users = Table(
        name("rm_users"),
        meta,
        Column("user_id", String(ID), nullable=False),
        Column("name", Text, nullable=False),
        # casefold() of the name, computed in Python: SQLite's lower() folds ASCII only (not Cyrillic).
        Column("name_folded", Text, nullable=False),
        Column("roles", Json, nullable=False),
        Column("segment", String(20), nullable=True),
        Column("lines", Json, nullable=False),
        Column("first_seen", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        _pk(name("rm_users"), "user_id"),
    )
    support = build_support_tables(meta, suffix, indexes=indexes)
    audit = build_audit_tables(meta, suffix, indexes=indexes)
    return ChatTables(suffix, conversations, members, messages, object_links, message_files, users, support, audit)


PROJECTIONS = ("chat", "directory", "support", "audit", "erasure")

# Per (projection, partition): the last event position applied, inclusive. Written in the same
# transaction as the projection's rows; never rebuilt (the rebuild sets it to the replayed head).
checkpoints = Table(
    "rm_checkpoints",
    metadata,
    Column("projection", String(60), nullable=False),
    Column("partition", Integer, nullable=False, autoincrement=False),
    Column("position", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    _pk("rm_checkpoints", "projection", "partition"),
)

TABLES = build_tables(metadata)
