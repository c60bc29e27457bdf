"""`ledgerline audit checkpoint` and `audit verify --checkpoint FILE` through the real command, on both
databases: a database administrator who edits an event AND recomputes every later hash passes the
plain verify but is caught by a signed checkpoint kept outside the database; so is cutting off the
newest events; an altered or foreign checkpoint is refused."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from helpers.store_support import cli_env, message, migrated_store, run_cli, stream_of
from sqlalchemy.engine import make_url
from test_cli_audit import ALTER_PAYLOAD, EVENTS, append_events, behind_the_stores_back

from shared.events.envelope import RecordedEvent
from shared.store import reads
from shared.store.engine import create_engine
from shared.store.verify import recompute_hash


def write_keys(directory: Path, name: str = "audit") -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private, public = directory / f"{name}.pem", directory / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private, public


def cli(database_url: str, *args: str, **settings: Path) -> tuple[int, str]:
    env = cli_env(database_url, **{f"LEDGERLINE_{k.upper()}": str(v) for k, v in settings.items()})
    done = run_cli("audit", *args, env=env)
    return done.returncode, done.stdout + done.stderr


def take_checkpoint(database_url: str, tmp_path: Path, private: Path) -> Path:
    out = tmp_path / "checkpoint.json"
    code, output = cli(database_url, "checkpoint", "--output", str(out), audit_signing_key_file=private)
    assert code == 0, output
    return out


def first_bad(output: str) -> int:
    named = re.search(r"first bad position (\d+)", output)
    assert named is not None, output
    return int(named.group(1))


async def stored_rows(database_url: str) -> list[RecordedEvent]:
    """The rows as stored (personal fields sealed), as an administrator with SQL access reads them."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            driver: Any = (await conn.get_raw_connection()).driver_connection
            sqlite = engine.dialect.name == "sqlite"
            cursor = await driver.execute(reads.SQLITE_ALL_AFTER if sqlite else reads.PG_ALL_AFTER, (0, 10_000))
            rows = await cursor.fetchall()
        return reads.sqlite_rows_to_recorded(rows) if sqlite else reads.pg_rows_to_recorded(rows)
    finally:
        await engine.dispose()


async def recompute_hashes_after_editing(database_url: str, position: int) -> None:
    """Alter one payload's text and rewrite every hash from there on, as an administrator covering
    their tracks would: the new hashes are computed from the altered content."""
    dialect = make_url(database_url).get_backend_name()
    rows = await stored_rows(database_url)
    rows[position - 1] = replace(rows[position - 1], payload={**rows[position - 1].payload, "text": "forged"})
    prev, statements = rows[position - 2].hash, [ALTER_PAYLOAD[dialect].replace("= 7", f"= {position}")]
    for row in rows[position - 1 :]:
        new = recompute_hash(row, prev)
        statements.append(f"UPDATE events SET prev_hash = '{prev}', hash = '{new}' WHERE position = {row.position}")
        prev = new
    with behind_the_stores_back(database_url) as execute:
        for statement in statements:
            execute(statement)


async def test_checkpoint_is_signed_json_and_verifies(database_url: str, tmp_path: Path) -> None:
    head = await append_events(database_url)
    private, public = write_keys(tmp_path)
    checkpoint = take_checkpoint(database_url, tmp_path, private)
    data = json.loads(checkpoint.read_text())
    assert set(data) == {"position", "hash", "recorded_at", "created_at", "key_id", "signature"}
    assert (data["position"], data["hash"]) == (head.position, head.hash)

    async with migrated_store(database_url) as store:  # history goes on after the checkpoint
        await store.append(stream_of("later"), [message("later", 1)])
    code, output = cli(database_url, "verify", "--checkpoint", str(checkpoint), audit_verify_key_file=public)
    assert code == 0, output
    assert f"head position {EVENTS + 1} " in output and f"checkpoint at position {EVENTS}" in output


async def test_recomputed_hashes_pass_plain_verify_but_not_the_checkpoint(database_url: str, tmp_path: Path) -> None:
    await append_events(database_url)
    private, public = write_keys(tmp_path)
    checkpoint = take_checkpoint(database_url, tmp_path, private)
    await recompute_hashes_after_editing(database_url, 7)

    code, output = cli(database_url, "verify")
    assert code == 0, output  # the chain alone is consistent again: this is what the checkpoint is for

    code, output = cli(database_url, "verify", "--checkpoint", str(checkpoint), audit_verify_key_file=public)
    assert code == 1, output
    assert first_bad(output) == EVENTS and "hashes recomputed" in output


async def test_events_cut_off_after_the_checkpoint_are_caught(database_url: str, tmp_path: Path) -> None:
    await append_events(database_url)
    private, _ = write_keys(tmp_path)
    checkpoint = take_checkpoint(database_url, tmp_path, private)
    with behind_the_stores_back(database_url) as execute:
        execute(f"DELETE FROM events WHERE position >= {EVENTS - 1}")
    # The verify key derived from the signing key when only that one is configured.
    code, output = cli(database_url, "verify", "--checkpoint", str(checkpoint), audit_signing_key_file=private)
    assert code == 1, output
    assert first_bad(output) == EVENTS - 1 and "removed" in output


async def test_an_altered_or_foreign_checkpoint_is_refused(database_url: str, tmp_path: Path) -> None:
    await append_events(database_url)
    private, public = write_keys(tmp_path)
    _, other_public = write_keys(tmp_path, "other")
    checkpoint = take_checkpoint(database_url, tmp_path, private)
    forged = tmp_path / "forged.json"
    data = json.loads(checkpoint.read_text())
    forged.write_text(json.dumps({**data, "position": data["position"] - 1}))

    code, output = cli(database_url, "verify", "--checkpoint", str(forged), audit_verify_key_file=public)
    assert code == 1 and "signature does not verify" in output, output
    code, output = cli(database_url, "verify", "--checkpoint", str(checkpoint), audit_verify_key_file=other_public)
    assert code == 1 and "not by the verify key" in output, output
    (tmp_path / "garbage.json").write_text("{not json")
    code, output = cli(
        database_url, "verify", "--checkpoint", str(tmp_path / "garbage.json"), audit_verify_key_file=public
    )
    assert code == 1 and "not JSON" in output, output


async def test_checkpoint_needs_a_signing_key(database_url: str) -> None:
    await append_events(database_url)
    code, output = cli(database_url, "checkpoint")
    assert code == 2 and "LEDGERLINE_AUDIT_SIGNING_KEY_FILE" in output, output


async def test_no_checkpoint_is_signed_over_a_broken_chain(database_url: str, tmp_path: Path) -> None:
    await append_events(database_url)
    private, _ = write_keys(tmp_path)
    with behind_the_stores_back(database_url) as execute:
        execute("UPDATE events SET actor = 'mallory' WHERE position = 5")
    out = tmp_path / "checkpoint.json"
    code, output = cli(database_url, "checkpoint", "--output", str(out), audit_signing_key_file=private)
    assert code == 1 and first_bad(output) == 5 and not out.exists(), output
