"""File metadata: the `files` table (migration 0004_files), not an event.

The event catalogue has no FileUploaded event, and an upload is not a fact of any conversation:
the file becomes part of the history when a message attaches it, and MessageSent then carries its
whole metadata (name, MIME type, size, SHA-256). So the table is the file store's index, like the
bytes themselves, and the event log stays the record of what was said (docs/chat-api.md).

`file_id` derives from (uploader, sha256, name): uploading the same file again answers the same id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, String, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.events.ids import deterministic_id
from shared.store.tables import UtcDateTime, metadata

files = Table(
    "files",
    metadata,
    Column("file_id", String(200), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("mime", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("uploader_id", String(200), nullable=False),
    Column("uploaded_at", UtcDateTime, nullable=False),
    Index("files_uploader_idx", "uploader_id"),
)


@dataclass(frozen=True, slots=True)
class FileInfo:
    file_id: str
    name: str
    mime: str
    size: int
    sha256: str
    uploader_id: str
    uploaded_at: datetime


def file_id_of(uploader_id: str, sha256: str, name: str) -> str:
    return str(deterministic_id("file", uploader_id, sha256, name))


async def record(engine: AsyncEngine, info: FileInfo) -> FileInfo:
    """Insert the file's row; when the same upload is recorded already, answer the stored one."""
    try:
        async with engine.begin() as conn:
            await conn.execute(files.insert().values(**_row(info)))
        return info
    except IntegrityError:
        async with engine.connect() as conn:
            stored = await get(conn, info.file_id)
        assert stored is not None  # the conflicting row exists: rows are never deleted
        return stored


async def get(conn: AsyncConnection, file_id: str) -> FileInfo | None:
    row = (await conn.execute(select(files).where(files.c.file_id == file_id))).first()
    return None if row is None else FileInfo(**row._asdict())


async def get_many(conn: AsyncConnection, file_ids: list[str]) -> dict[str, FileInfo]:
    rows = await conn.execute(select(files).where(files.c.file_id.in_(file_ids)))
    return {r.file_id: FileInfo(**r._asdict()) for r in rows}


def _row(info: FileInfo) -> dict[str, object]:
    return {name: getattr(info, name) for name in FileInfo.__slots__}
