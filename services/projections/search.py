"""Full-text search over message text: PostgreSQL tsvector (russian || english) with a GIN index, or
an SQLite FTS5 table. Both are keyed by the MessageSent position (rm_messages.position), so that an
edit or a retraction finds its entry by one primary-key lookup, and a rebuild gives the same keys.

PostgreSQL: the document is `to_tsvector('russian', text) || to_tsvector('english', text)`; the
query is the OR of `websearch_to_tsquery` in both configurations, so Russian word forms match
(договор / договора share the stem) as do English ones (contract / contracts).
SQLite: FTS5 with the `unicode61` tokenizer has no stemmer; the documented approximation is prefix
matching of each query word after stripping a common Russian inflection ending (see `fts5_query`).

Highlights come back HTML-escaped with matches in <mark>…</mark>: the database marks matches with
control characters, Python escapes the text and only then turns the marks into tags, so message text
can never inject markup.
"""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from services.common import pg_driver
from services.projections.sql import cached_text
from services.projections.tables import ChatTables

START, STOP = "\x02", "\x03"
SNIPPET_WORDS = 24

# Longest first: "ами" must be tried before "и". Only stripped when at least 4 letters remain, so
# short words ("дом", "сто") are matched as typed.
_ENDINGS_TEXT = (
    "ами ями ого его ому ему ыми ими ой ей ий ый ая яя ое ее ов ев ам ям ах ях ом ем ую юю ы и а я о е у ю ь й"
)
_RU_ENDINGS = sorted(_ENDINGS_TEXT.split(), key=len, reverse=True)
_WORD = re.compile(r"\w+", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)


def create_ddl(dialect: str, name: str, canonical: str = "rm_search") -> list[str]:
    """Statements that create the search table `name` (the GIN index is named after `canonical`)."""
    if dialect == "postgresql":
        return [
            f"CREATE TABLE {name} (position BIGINT NOT NULL, conversation_id VARCHAR(200) NOT NULL, "
            f"seq INTEGER NOT NULL, document TSVECTOR NOT NULL, CONSTRAINT {name}_pkey PRIMARY KEY (position))",
        ]
    return [f"CREATE VIRTUAL TABLE {name} USING fts5(text, tokenize = 'unicode61 remove_diacritics 2')"]


def index_ddl(dialect: str, name: str = "rm_search") -> list[str]:
    if dialect == "postgresql":
        return [f"CREATE INDEX ix_{name}_document ON {name} USING gin (document)"]
    return []  # FTS5 is its own index


async def reindex(conn: AsyncConnection, t: ChatTables, keys: list[dict[str, Any]]) -> None:
    """(Re)build the entries of messages `keys` ([{c, s}]) from their current row: a retracted or
    text-less message gets no entry."""
    if not keys:
        return
    await unindex(conn, t, keys)
    if conn.dialect.name == "postgresql":
        await _pg_index(conn, t, keys)
        return
    pick = f"FROM {t.messages.name} WHERE conversation_id = :c AND seq = :s AND NOT retracted AND text <> ''"
    await conn.execute(cached_text(f"INSERT INTO {t.search} (rowid, text) SELECT position, text {pick}"), keys)


async def index_sent(conn: AsyncConnection, t: ChatTables, keys: list[dict[str, Any]]) -> None:
    """The entries of messages just sent. On PostgreSQL one insert that leaves an existing entry
    alone (a redelivered MessageSent: its entry already follows the row, as edits reindex); on
    SQLite, whose FTS5 table has no such conflict clause, a reindex."""
    if not keys:
        return
    if conn.dialect.name != "postgresql":
        await reindex(conn, t, keys)
        return
    await _pg_index(conn, t, keys)


async def unindex(conn: AsyncConnection, t: ChatTables, keys: list[dict[str, Any]]) -> None:
    if not keys:
        return
    m = t.messages.name
    if conn.dialect.name == "postgresql":
        await pg_driver.execute(conn, _PG_UNINDEX.format(search=t.search, messages=m), _pg_arrays(keys))
        return
    sql = f"DELETE FROM {t.search} WHERE rowid = (SELECT position FROM {m} WHERE conversation_id = :c AND seq = :s)"
    await conn.execute(cached_text(sql), keys)


async def _pg_index(conn: AsyncConnection, t: ChatTables, keys: list[dict[str, Any]]) -> None:
    # One statement for the whole batch (the keys as two arrays), not one per message: run once per
    # message in the pipeline it was ~12 % of the projections worker's CPU at 1,700 msg/s.
    await pg_driver.execute(conn, _PG_INDEX.format(search=t.search, messages=t.messages.name), _pg_arrays(keys))


# The batch's (conversation, seq) keys joined in as rows of two parallel arrays.
_PG_KEYS = (
    "JOIN unnest(CAST(:cs AS varchar[]), CAST(:ss AS integer[])) AS k(c, s) ON m.conversation_id = k.c AND m.seq = k.s"
)
_PG_INDEX = (
    "INSERT INTO {search} (position, conversation_id, seq, document) SELECT m.position, m.conversation_id, m.seq,"
    " to_tsvector('russian', m.text) || to_tsvector('english', m.text) FROM {messages} m "
    + _PG_KEYS
    + " WHERE NOT m.retracted AND m.text <> '' ON CONFLICT (position) DO NOTHING"
)
_PG_UNINDEX = "DELETE FROM {search} WHERE position IN (SELECT m.position FROM {messages} m " + _PG_KEYS + ")"


def _pg_arrays(keys: list[dict[str, Any]]) -> dict[str, list[Any]]:
    unique = list(dict.fromkeys((k["c"], k["s"]) for k in keys))  # one row per message, once
    return {"cs": [c for c, _ in unique], "ss": [s for _, s in unique]}


def stem_ru(word: str) -> str:
    if not _CYRILLIC.search(word):
        return word
    for ending in _RU_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            return word[: -len(ending)]
    return word


def fts5_query(q: str) -> str:
    """An FTS5 MATCH expression: every word must match, as a prefix of its stripped form.
    Words are quoted, so FTS5 operators typed by the user (AND, NEAR, *, :) are plain text."""
    words = [stem_ru(w.lower()) for w in _WORD.findall(q)]
    return " ".join(f'"{w}"*' for w in words if w)


def to_html(marked: str) -> str:
    return html.escape(marked, quote=False).replace(START, "<mark>").replace(STOP, "</mark>")


def search_sql(dialect: str, in_conversation: bool) -> str:
    """The search statement: hits in conversations where the caller is an active member, newest first."""
    conv = " AND m.conversation_id = :conversation_id" if in_conversation else ""
    select = "SELECT m.conversation_id, m.seq, m.message_id, m.sender_id, m.text, m.sent_at, m.edited_at"
    member = "JOIN rm_members mb ON mb.conversation_id = m.conversation_id AND mb.user_id = :user_id AND mb.active"
    if dialect == "postgresql":
        options = f"StartSel={START}, StopSel={STOP}, MaxWords=35, MinWords=15, HighlightAll=false"
        return (
            f"{select}, ts_headline('russian', m.text, q.query, '{options}') AS highlight "
            "FROM (SELECT websearch_to_tsquery('russian', :q) || websearch_to_tsquery('english', :q) AS query) q "
            "JOIN rm_search s ON s.document @@ q.query "
            f"JOIN rm_messages m ON m.position = s.position {member} "
            f"WHERE true{conv} ORDER BY s.position DESC LIMIT :limit"
        )
    return (
        f"{select}, snippet(rm_search, 0, char(2), char(3), '…', {SNIPPET_WORDS}) AS highlight "
        f"FROM rm_search JOIN rm_messages m ON m.position = rm_search.rowid {member} "
        f"WHERE rm_search MATCH :q{conv} ORDER BY rm_search.rowid DESC LIMIT :limit"
    )
