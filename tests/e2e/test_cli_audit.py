"""`ledgerline audit verify` through the real command: exit 0 with the head when the chain is intact;
exit 1 naming the first bad position after a row was altered, removed or inserted behind the store's
back (PostgreSQL: triggers disabled as the superuser; SQLite: triggers dropped, file edited)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from helpers.store_support import cli_env, message, migrated_store, run_cli, stream_of
from sqlalchemy.engine import make_url

from shared.store.port import Head

EVENTS = 20

# Each tampering: (SQL statements, the position verify must name). The payload edit (PostgreSQL's json
# has no json_set: through jsonb and back) and the way to make up an event id differ per database.
ALTER_PAYLOAD = {
    "postgresql": (
        "UPDATE events SET payload = jsonb_set(payload::jsonb, '{text}', '\"forged\"')::json WHERE position = 7"
    ),
    "sqlite": "UPDATE events SET payload = json_set(payload, '$.text', 'forged') WHERE position = 7",
}
INSERT_COPY = """INSERT INTO events (position, stream_id, stream_version, event_id, type, schema_version,
    occurred_at, recorded_at, actor, correlation_id, causation_id, payload, metadata, prev_hash, hash)
  SELECT {position}, 'conversation-forged', 1, {event_id}, type, schema_version, occurred_at, recorded_at,
    actor, correlation_id, causation_id, payload, metadata, {prev_hash}, hash
  FROM events WHERE position = 3"""
EVENT_ID = {"postgresql": "gen_random_uuid()", "sqlite": "'8d6f0c6e1f4b4c3a9b0e2d7c5a4b3c21'"}


def tamperings(dialect: str) -> dict[str, tuple[list[str], int]]:
    shift_up = [  # make room at position 10 (two steps, so that the primary key never collides)
        "UPDATE events SET position = -position - 1 WHERE position >= 10",
        "UPDATE events SET position = -position WHERE position < 0",
    ]
    return {
        "altered payload": ([ALTER_PAYLOAD[dialect]], 7),
        "altered envelope": (["UPDATE events SET actor = 'mallory' WHERE position = 15"], 15),
        "removed row": (["DELETE FROM events WHERE position = 12"], 12),
        "inserted at the end": (
            [INSERT_COPY.format(position=EVENTS + 1, event_id=EVENT_ID[dialect], prev_hash="prev_hash")],
            EVENTS + 1,
        ),
        "inserted in the middle": (
            [
                *shift_up,
                INSERT_COPY.format(
                    position=10,
                    event_id=EVENT_ID[dialect],
                    prev_hash="(SELECT hash FROM events WHERE position = 9)",
                ),
            ],
            10,
        ),
    }


@contextmanager
def behind_the_stores_back(database_url: str) -> Iterator[Callable[[str], None]]:
    """A connection with the immutability triggers out of the way, as only a superuser could."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as pg:
            pg.execute("ALTER TABLE events DISABLE TRIGGER USER")
            yield lambda sql: pg.execute(sql)  # type: ignore[arg-type]  # the SQL above is static
            pg.execute("ALTER TABLE events ENABLE TRIGGER USER")
        return
    lite = sqlite3.connect(str(url.database))
    try:
        lite.execute("DROP TRIGGER events_no_update")
        lite.execute("DROP TRIGGER events_no_delete")
        yield lambda sql: lite.execute(sql)  # type: ignore[func-returns-value]
        lite.commit()
    finally:
        lite.close()


def verify(database_url: str) -> tuple[int, str]:
    done = run_cli("audit", "verify", env=cli_env(database_url))
    return done.returncode, done.stdout + done.stderr


async def append_events(database_url: str) -> Head:
    async with migrated_store(database_url) as store:
        for i in range(EVENTS // 4):
            await store.append(stream_of(f"t{i}"), [message(f"t{i}", n) for n in range(1, 5)])
        return await store.head()


async def test_verify_passes_on_an_intact_chain_and_prints_the_head(database_url: str) -> None:
    head = await append_events(database_url)
    code, output = verify(database_url)
    assert code == 0, output
    assert f"head position {EVENTS} hash {head.hash}" in output


async def test_verify_passes_on_an_empty_store(database_url: str) -> None:
    async with migrated_store(database_url):
        pass
    code, output = verify(database_url)
    assert code == 0, output
    assert f"head position 0 hash {'0' * 64}" in output


@pytest.mark.parametrize(
    "tampering",
    ["altered payload", "altered envelope", "removed row", "inserted at the end", "inserted in the middle"],
)
async def test_verify_names_the_first_tampered_position(database_url: str, tampering: str) -> None:
    await append_events(database_url)
    dialect = make_url(database_url).get_backend_name()
    statements, bad_position = tamperings(dialect)[tampering]
    with behind_the_stores_back(database_url) as execute:
        for statement in statements:
            execute(statement)

    code, output = verify(database_url)

    assert code == 1, output
    named = re.search(r"first bad position (\d+)", output)
    assert named is not None, output
    assert int(named.group(1)) == bad_position, output


async def test_a_removed_last_event_is_not_visible_inside_the_table(database_url: str) -> None:
    """What the chain alone cannot show: cutting off the newest events leaves an intact, shorter chain.
    The head printed here, compared with one kept outside the database, shows it (the Audit issue's
    signed checkpoints)."""
    await append_events(database_url)
    with behind_the_stores_back(database_url) as execute:
        execute(f"DELETE FROM events WHERE position = {EVENTS}")
    code, output = verify(database_url)
    assert code == 0, output
    assert f"head position {EVENTS - 1} " in output
