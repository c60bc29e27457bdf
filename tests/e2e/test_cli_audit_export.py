"""`ledgerline audit export` and `audit replay` through the real command, on both databases.

The export of 200,000 events streams: the peak memory of the process exporting them stays within a
fixed bound of one exporting a single event (the output is far larger than that bound), and the file
parses back to exactly the rows of the audit read model that were asked for, in JSON Lines and CSV.
The read model's rows are written in bulk by SQL here (building them through the projector is tested
elsewhere): this test is about the export.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers.audit_support import CONV, EXPECTED, MOMENTS, observed, write_script
from helpers.store_support import REPO, cli_env, migrated_store, run_cli
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.audit.queries import COLUMNS
from shared.store.hashing import format_time

COUNT = 200_000
RSS_BOUND_KIB = 40 * 1024  # one page of 5,000 records and its encoding is a few MB; the export is >100 MB
FILLER = "x" * 400

# Rows 1..COUNT: 1 in 1,000 is a "Rare" event (the small export); summaries and payloads carry
# quotes, commas and a non-ASCII name, so that the CSV quoting is exercised.
PG_FILL = f"""INSERT INTO rm_audit_events ({", ".join(COLUMNS)})
  SELECT i, '2026-01-01T00:00:00.' || lpad((i % 1000000)::text, 6, '0') || '+00:00',
    '2026-01-01T00:00:00.000000+00:00', 'user-' || (i % 97), 'conversation-c' || (i % 50),
    CASE WHEN i % 1000 = 0 THEN 'Rare' ELSE 'MessageSent' END, 'c' || (i % 50),
    'user-' || (i % 97) || ' sent message #' || i || ': "Привет, world"', repeat('a', 64),
    '{{"conversation_id":"c' || (i % 50) || '","seq":' || i || ',"text":"Привет, \\"world\\" {FILLER}"}}'
  FROM generate_series(1, {COUNT}) AS i"""
SQLITE_FILL = f"""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {COUNT})
  INSERT INTO rm_audit_events ({", ".join(COLUMNS)})
  SELECT i, '2026-01-01T00:00:00.' || substr('000000' || i, -6, 6) || '+00:00',
    '2026-01-01T00:00:00.000000+00:00', 'user-' || (i % 97), 'conversation-c' || (i % 50),
    CASE WHEN i % 1000 = 0 THEN 'Rare' ELSE 'MessageSent' END, 'c' || (i % 50),
    'user-' || (i % 97) || ' sent message #' || i || ': "Привет, world"', '{"a" * 64}',
    '{{"conversation_id":"c' || (i % 50) || '","seq":' || i || ',"text":"Привет, \\"world\\" {FILLER}"}}'
  FROM n"""


def sync_url(database_url: str) -> str:
    url = make_url(database_url)
    return url.set(
        drivername="postgresql+psycopg" if url.get_backend_name() == "postgresql" else "sqlite"
    ).render_as_string(hide_password=False)


def fill_and_read_back(database_url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text(PG_FILL if conn.dialect.name == "postgresql" else SQLITE_FILL))
        with engine.connect() as conn:
            return [
                tuple(r)
                for r in conn.execute(text(f"SELECT {', '.join(COLUMNS)} FROM rm_audit_events ORDER BY position"))
            ]
    finally:
        engine.dispose()


def export_measured(database_url: str, tmp_path: Path, out: Path, *args: str) -> int:
    """Runs the export in a fresh process; returns its peak RSS in KiB."""
    rss = tmp_path / "rss.txt"
    env = cli_env(database_url, RSS_OUT=str(rss), PYTHONPATH=str(REPO / "tests"))
    command = [sys.executable, "-m", "helpers.rss_cli", "audit", "export", "--output", str(out), *args]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return int(rss.read_text())


@pytest.mark.slow
async def test_export_of_200000_events_streams_in_bounded_memory_and_parses_back(
    database_url: str, tmp_path: Path
) -> None:
    async with migrated_store(database_url):
        pass
    expected = fill_and_read_back(database_url)
    for fmt in ("jsonl", "csv"):
        small, big = tmp_path / f"small.{fmt}", tmp_path / f"big.{fmt}"
        small_peak = export_measured(database_url, tmp_path, small, "--format", fmt, "--type", "Rare", "--to",
                                     "2026-01-01T00:00:00.001001+00:00")  # fmt: skip
        big_peak = export_measured(database_url, tmp_path, big, "--format", fmt)

        assert big.stat().st_size > 2 * RSS_BOUND_KIB * 1024
        assert big_peak - small_peak < RSS_BOUND_KIB, (fmt, small_peak, big_peak)
        if fmt == "jsonl":
            check_jsonl(big, small, expected)
        else:
            check_csv(big, small, expected)


def check_jsonl(big: Path, small: Path, expected: list[tuple[Any, ...]]) -> None:
    records = [orjson.loads(line) for line in big.read_bytes().splitlines()]
    assert len(records) == COUNT
    assert [tuple(r[c] for c in COLUMNS[:-1]) for r in records] == [row[:-1] for row in expected]
    assert [r["payload"] for r in records] == [json.loads(row[-1]) for row in expected]
    assert [orjson.loads(line)["position"] for line in small.read_bytes().splitlines()] == [1000]


def check_csv(big: Path, small: Path, expected: list[tuple[Any, ...]]) -> None:
    with big.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(COLUMNS) and len(rows) == COUNT + 1
    assert [tuple(r) for r in rows[1:]] == [tuple("" if v is None else str(v) for v in row) for row in expected]
    with small.open(newline="", encoding="utf-8") as f:
        assert [r[0] for r in csv.reader(f)] == ["position", "1000"]


async def test_cli_replay_reads_the_event_store_and_is_recorded(database_url: str) -> None:
    """No projections run here: replay works from the store alone."""
    async with migrated_store(database_url) as store:
        moments = await write_script(store)
    for step in MOMENTS:
        as_of = format_time(moments[step - 1])
        done = run_cli("audit", "replay", "--conversation", CONV, "--as-of", as_of, "--auditor", "aud-1",
                       env=cli_env(database_url))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert observed(json.loads(done.stdout)) == EXPECTED[step], f"after step {step}"
    early = run_cli(
        "audit", "replay", "--conversation", CONV, "--as-of", "2000-01-01T00:00:00", env=cli_env(database_url)
    )
    assert early.returncode == 1 and "did not exist" in early.stderr
    bad = run_cli("audit", "replay", "--conversation", CONV, "--as-of", "soon", env=cli_env(database_url))
    assert bad.returncode == 2 and "not an ISO-8601 time" in bad.stderr
    async with migrated_store(database_url) as store:
        recorded = await store.read_stream("audit")
    assert [(e.actor, e.payload["action"], e.payload["record_count"]) for e in recorded[:2]] == [
        ("aud-1", "replay", 0),
        ("aud-1", "replay", 1),
    ]
    assert recorded[-1].actor.startswith("os:")  # no --auditor: the operating-system account


async def test_cli_erase_then_replay_shows_the_person_erased_and_verify_passes(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        await write_script(store)
    env = cli_env(database_url)
    done = run_cli("audit", "erase", "--user", "ann", "--reason", "data_subject_request", "--by", "dpo", env=env)
    assert done.returncode == 0 and "erased: personal data of ann" in done.stdout, done.stderr
    replayed = json.loads(run_cli("audit", "replay", "--conversation", CONV, env=env).stdout)
    assert [(m["sender_id"], m["text"]) for m in replayed["messages"]] == [
        ("ann", "[erased]"),
        ("bob", "Agreed"),
        ("ann", None),  # retracted before the erasure: withdrawn either way
    ]
    assert replayed["title"] == "[erased]"  # ann started it
    verified = run_cli("audit", "verify", env=env)
    assert verified.returncode == 0, verified.stdout
    async with migrated_store(database_url) as store:
        erased = [e for e in await store.read_stream("user-ann") if e.type == "PersonalDataErased"]
    assert [(e.actor, e.payload["reason"]) for e in erased] == [("dpo", "data_subject_request")]
