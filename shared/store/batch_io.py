"""The I/O of one group-commit batch, straight on the drivers SQLAlchemy uses (psycopg 3, sqlite3).

Why not through SQLAlchemy here: a batch is lock → read state → insert → commit, and its cost is
round trips, not SQL. Through SQLAlchemy's async layer that was ~8 sequential round trips per batch
(pool checkout with pre-ping, lock, three reads, executemany, notify, commit) at ~0.6 ms each on this
machine. Here, both on the writer's thread (shared/store/append.py), each on one held blocking
connection:
- PostgreSQL, checked path: BEGIN + lock + the three reads (head, the batch's stream versions, which
  of its event ids are stored) go out together in psycopg's pipeline mode (one round trip); the rows
  go in with COPY; NOTIFY + COMMIT go together again. The reads are separate statements after the
  lock statement, so in READ COMMITTED they see every batch committed before the lock was granted.
  COPY rather than executemany: the server's cost per row is what bounds a batch; a 64-event batch
  took 2.1 ms by COPY against 3.2 by executemany in one pipeline (decisions 0019, 0022). COPY cannot
  run in pipeline mode, which costs two round trips more per batch (~0.1 ms each on loopback).
- PostgreSQL, fast path (every batch after the first, while this writer is the only one appending):
  the head and versions this writer left behind are reused and the reads are skipped; the primary
  key and the unique keys prove them current (`PgBatchIO._write_fast`). The reads were a third of
  a 64-event batch's time.
- SQLite: one sqlite3 connection, `BEGIN IMMEDIATE`, the reads, executemany, COMMIT.
The planning between the reads and the writes (versions, positions, hashes) is shared.

Schema and every other query stay with SQLAlchemy (shared/store/tables.py, reads, migrations).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import psycopg

from shared.store.engine import SQLITE_BUSY_TIMEOUT_MS, begin_immediate, configure_sqlite_connection

NOTIFY_CHANNEL = "ledgerline_events"
# pg_advisory_xact_lock key: "LDGRLINE" as an int64, so it cannot collide with an unrelated app's lock.
APPEND_LOCK_KEY = 0x4C44_4752_4C49_4E45

Row = tuple[Any, ...]
"""One event row in column order: position, stream_id, stream_version, event_id, type, schema_version,
occurred_at, recorded_at, actor, correlation_id, causation_id, payload (bytes), metadata (bytes),
prev_hash, hash; then occurred_at and recorded_at as the hash's ISO-8601 text (SQLite stores that text)."""
Stored = dict[uuid.UUID, tuple[str, int, int]]
Planner = Callable[[int, str | None, dict[str, int], Stored, bool], list[Row] | None]
"""(head position, head hash or None when empty, stream versions, stored ids, checked) -> rows to insert.
`checked`: the state was all read in this transaction. When it was not (PostgreSQL's fast path), the
planner returns None for a batch that must be decided on the checked path (see PgBatchIO._write_fast)."""

# Batches of at most this many rows are inserted in the same pipeline as BEGIN, the lock and COMMIT
# (one round trip); larger ones by COPY (PgBatchIO._insert_and_commit).
PIPELINED_ROWS = 32
VERSION_CACHE_MAX = 100_000  # streams; a cleared cache only costs one indexed query per stream

COLUMNS = (
    "position, stream_id, stream_version, event_id, type, schema_version, occurred_at, recorded_at, "
    "actor, correlation_id, causation_id, payload, metadata, prev_hash, hash"
)
HEAD_SQL = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"


class BatchIO(Protocol):
    """Blocking; always called from the one writer thread."""

    def write_batch(self, stream_ids: Sequence[str], event_ids: Sequence[uuid.UUID], plan: Planner) -> None:
        """In one transaction under the append lock: read the state, plan, insert the planned rows."""
        ...

    def close(self) -> None: ...


class PgBatchIO:
    _LOCK = "SELECT pg_advisory_xact_lock(%s)"
    _VERSIONS = "SELECT s, (SELECT max(stream_version) FROM events WHERE stream_id = s) FROM unnest(%s::text[]) AS s"
    _STORED = "SELECT event_id, stream_id, stream_version, position FROM events WHERE event_id = ANY(%s)"
    _COPY = f"COPY events ({COLUMNS}) FROM STDIN"
    _INSERT = f"INSERT INTO events ({COLUMNS}) VALUES ({', '.join(['%s'] * 15)})"

    def __init__(self, conninfo: str, on_path: Callable[[str], None] | None = None) -> None:
        self._conninfo = conninfo
        # Told which path each batch took: "fast", "checked", or "fast_refused" (a fast attempt rolled
        # back for the checked path: another process had appended, an id repeated, or a conflict).
        self._on_path = on_path or (lambda path: None)
        # A blocking connection on the writer's thread, not an async one on the event loop: under load
        # the loop is busy with requests, and each round trip's turn waited behind them (a 1 ms commit
        # took tens of ms and batches stayed small).
        self._conn: psycopg.Connection[Any] | None = None
        # The head as this writer left it (position, hash), and stream versions as of that head: what
        # the fast path plans from (see `_write_fast`). None: take the checked path.
        self._head: tuple[int, str | None] | None = None
        self._versions: dict[str, int] = {}
        # The head position after this writer's last commit, whichever path. The fast path resumes only
        # once a checked batch finds the head still there: while another process is appending too,
        # nearly every fast batch would fail its COPY, so the checked path is taken until it stops.
        self._last_head: int | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            # autocommit: the batch sends BEGIN and COMMIT itself, so that COMMIT can share a round trip.
            self._conn = psycopg.Connection.connect(self._conninfo, prepare_threshold=None, autocommit=True)
        return self._conn

    def write_batch(self, stream_ids: Sequence[str], event_ids: Sequence[uuid.UUID], plan: Planner) -> None:
        conn = self._connection()
        try:
            if self._head is not None and self._write_fast(conn, stream_ids, plan):
                self._on_path("fast")
                return
            self._write_checked(conn, stream_ids, event_ids, plan)
            self._on_path("checked")
        except BaseException:
            self._discard()  # closing the connection rolls the open transaction back
            raise

    def _write_fast(self, conn: psycopg.Connection[Any], stream_ids: Sequence[str], plan: Planner) -> bool:
        """Plan from the head and versions this writer left, read nothing but unknown streams' versions;
        False (nothing written) when the checked path must decide.

        Why this is safe: positions are gapless, so any append by another process since our last batch
        holds position head + 1, which is the first position planned here, and the COPY fails on the
        primary key. A COPY that succeeds therefore proves the cached head and versions were current.
        A repeated event id fails on its unique key, so the stored-ids query is not needed either; and
        an answer that is an error (a version conflict may be a repeat of an earlier append) is left
        to the checked path, which reads everything (the planner returns None)."""
        assert self._head is not None
        versions: dict[str, int] = {}
        unknown = []
        for stream_id in stream_ids:
            version = self._versions.get(stream_id)
            if version is None:
                unknown.append(stream_id)
            else:
                versions[stream_id] = version
        if unknown:  # their versions first (one round trip), under the lock the insert then holds
            with conn.pipeline():
                conn.execute("BEGIN")
                conn.execute(self._LOCK, (APPEND_LOCK_KEY,))
                versions_cur = conn.execute(self._VERSIONS, (unknown,))
            versions.update((s, v) for s, v in versions_cur.fetchall() if v is not None)
        # Every stream known: nothing is read, and BEGIN and the lock go out with the rows. Planning
        # before the lock is safe for the same reason as planning from the cache at all: an append by
        # another process in between holds position head + 1, and the insert fails on it.
        rows = plan(*self._head, versions, {}, False)
        if not rows:
            if unknown:
                conn.execute("ROLLBACK")
            self._on_path("fast_refused")
            return False
        try:
            self._insert_and_commit(conn, rows, begin=not unknown)
        except psycopg.errors.UniqueViolation:
            conn.execute("ROLLBACK")
            self._forget()
            self._on_path("fast_refused")
            return False
        self._remember((rows[-1][0], rows[-1][14]), versions, trusted=True)
        return True

    def _write_checked(
        self, conn: psycopg.Connection[Any], stream_ids: Sequence[str], event_ids: Sequence[uuid.UUID], plan: Planner
    ) -> None:
        """Read the head, every stream's version and which event ids are stored, then plan and write."""
        with conn.pipeline():
            conn.execute("BEGIN")
            conn.execute(self._LOCK, (APPEND_LOCK_KEY,))
            head_cur = conn.execute(HEAD_SQL)
            versions_cur = conn.execute(self._VERSIONS, (list(stream_ids),))
            stored_cur = conn.execute(self._STORED, (list(event_ids),))
        head = head_cur.fetchone()
        head_position, head_hash = (head[0], head[1]) if head else (0, None)
        versions = {s: v for s, v in versions_cur.fetchall() if v is not None}
        stored = {e: (s, v, p) for e, s, v, p in stored_cur.fetchall()}
        rows = plan(head_position, head_hash, versions, stored, True) or []
        quiet = head_position == self._last_head  # nobody else appended since our previous batch
        if not quiet:
            self._versions.clear()  # another process appended: what we knew of other streams may be old
        if rows:
            self._insert_and_commit(conn, rows)
        else:
            conn.execute("COMMIT")
        # Not quiet: checked again next time, the fast path waits for a quiet batch.
        self._remember((rows[-1][0], rows[-1][14]) if rows else (head_position, head_hash), versions, trusted=quiet)

    def _insert_and_commit(self, conn: psycopg.Connection[Any], rows: list[Row], *, begin: bool = False) -> None:
        """Insert `rows`, NOTIFY and COMMIT; `begin`: open the transaction and take the lock first.

        A small batch goes in one pipeline with everything else, one round trip: in a busy process
        each round trip of the writer's thread also waits for the GIL (up to the 5 ms switch interval),
        so at chat rates (batches of a few events) round trips, not rows, are the batch's time. A
        large batch goes by COPY, which costs the server less per row (decision 0027)."""
        notify = (NOTIFY_CHANNEL, str(rows[-1][0]))
        if len(rows) <= PIPELINED_ROWS:
            with conn.pipeline(), conn.cursor() as cur:
                if begin:
                    conn.execute("BEGIN")
                    conn.execute(self._LOCK, (APPEND_LOCK_KEY,))
                cur.executemany(self._INSERT, [_pg_params(row) for row in rows])
                conn.execute("SELECT pg_notify(%s, %s)", notify)
                conn.execute("COMMIT")
            return
        if begin:
            with conn.pipeline():
                conn.execute("BEGIN")
                conn.execute(self._LOCK, (APPEND_LOCK_KEY,))
        with conn.cursor() as cur, cur.copy(self._COPY) as copy:
            for row in rows:
                copy.write_row(_pg_params(row))
        with conn.pipeline():
            conn.execute("SELECT pg_notify(%s, %s)", notify)
            conn.execute("COMMIT")

    def _remember(self, head: tuple[int, str | None], versions: dict[str, int], *, trusted: bool) -> None:
        """After a commit: `head` is the new head and `versions` (the batch's streams, read and planned)
        hold as of it; `trusted`: the next batch may plan from them (the fast path)."""
        if len(self._versions) > VERSION_CACHE_MAX:
            self._versions.clear()
        self._versions.update(versions)
        self._last_head = head[0]
        self._head = head if trusted else None

    def _forget(self) -> None:
        self._head = None
        self._versions.clear()

    def _discard(self) -> None:
        """After an error the connection's state is unknown: start the next batch on a new one."""
        self._forget()
        self._last_head = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error):
                conn.close()

    def close(self) -> None:
        self._discard()


def _pg_params(row: Row) -> Row:
    # JSON as text (bytes would be sent as bytea); the ISO time texts are not sent.
    return (*row[:11], row[11].decode(), row[12].decode(), row[13], row[14])


class SqliteBatchIO:
    _INSERT = f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    _VERSION = "SELECT max(stream_version) FROM events WHERE stream_id = ?"
    _STORED_CHUNK = 500  # below SQLite's bound-parameter limit

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        # Stream versions as of `_cached_head`: valid for the next batch when the head is still ours
        # (no other process appended in between), which spares one query per stream per batch.
        self._versions: dict[str, int] = {}
        self._cached_head = -1

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            configure_sqlite_connection(conn.execute, SQLITE_BUSY_TIMEOUT_MS, time.sleep)  # own thread
            self._conn = conn
        return self._conn

    def write_batch(self, stream_ids: Sequence[str], event_ids: Sequence[uuid.UUID], plan: Planner) -> None:
        conn = self._connection()
        begin_immediate(conn.execute, time.sleep)  # polls for the write lock (this is the writer's own thread)
        try:
            head = conn.execute(HEAD_SQL).fetchone()
            head_position = head[0] if head else 0
            versions = self._current_versions(conn, head_position, stream_ids)
            stored = self._stored(conn, event_ids)
            rows = plan(head_position, head[1] if head else None, dict(versions), stored, True) or []
            if rows:  # never None: checked
                conn.executemany(self._INSERT, [_sqlite_params(r) for r in rows])
            conn.execute("COMMIT")
        except BaseException:
            self._cached_head = -1
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._remember(head_position, rows)

    def _current_versions(self, conn: sqlite3.Connection, head: int, stream_ids: Sequence[str]) -> dict[str, int]:
        if head != self._cached_head or len(self._versions) > VERSION_CACHE_MAX:
            self._versions.clear()
        versions = {}
        for stream_id in stream_ids:
            version = self._versions.get(stream_id)
            if version is None:
                version = conn.execute(self._VERSION, (stream_id,)).fetchone()[0]
            if version is not None:
                versions[stream_id] = version
        return versions

    def _remember(self, head: int, rows: list[Row]) -> None:
        for row in rows:
            self._versions[row[1]] = row[2]
        self._cached_head = rows[-1][0] if rows else head

    def _stored(self, conn: sqlite3.Connection, event_ids: Sequence[uuid.UUID]) -> Stored:
        stored: Stored = {}
        ids = [e.hex for e in event_ids]
        for start in range(0, len(ids), self._STORED_CHUNK):
            chunk = ids[start : start + self._STORED_CHUNK]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT event_id, stream_id, stream_version, position FROM events WHERE event_id IN ({marks})"
            for event_id, stream_id, version, position in conn.execute(query, chunk):
                stored[uuid.UUID(hex=event_id)] = (stream_id, version, position)
        return stored

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _sqlite_params(row: Row) -> Row:
    """The same text forms SQLAlchemy's types write on SQLite (Uuid: 32 hex digits; UtcDateTime: ISO)."""
    return (
        row[0],
        row[1],
        row[2],
        row[3].hex,
        row[4],
        row[5],
        row[15],
        row[16],
        row[8],
        None if row[9] is None else row[9].hex,
        None if row[10] is None else row[10].hex,
        row[11].decode(),
        row[12].decode(),
        row[13],
        row[14],
    )
