"""`ledgerline audit export`, `audit replay`, `audit erase` and `audit retention` (docs/audit.md).

Both are recorded as AuditQueried on the `audit` stream, with the auditor named by `--auditor ID`
or, when absent, `os:<login>` (the operating-system account that ran the command).
Export reads the audit read model (its filters need its indexes; `projections status` shows its
lag); replay reads the event store directly, so it never depends on a read model being current.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from datetime import UTC, datetime
from typing import IO

import orjson

from services.admin.common import admin_settings
from services.audit import queries
from services.audit.erasure import erase_person
from services.audit.export import export
from services.audit.recording import record_query
from services.audit.replay import replay, to_json
from services.audit.retention import expire_conversations
from shared.config import Settings
from shared.store.engine import create_engine
from shared.store.sql import SqlEventStore


def auditor_of(args: argparse.Namespace) -> str:
    return str(args.auditor) if args.auditor else f"os:{getpass.getuser()}"


class Counter:
    """Progress of an export on stderr: records so far and the rate (the total is not known ahead)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.count, self._started, self._last = enabled, 0, time.perf_counter(), 0.0

    def __call__(self, count: int) -> None:
        self.count = count
        now = time.perf_counter()
        if self.enabled and now - self._last >= 0.2:
            self._last = now
            rate = count / max(now - self._started, 1e-9)
            print(f"\rexported {count:,} events ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print(f"\rexported {self.count:,} events", file=sys.stderr, flush=True)


def export_main(args: argparse.Namespace) -> int:
    settings = admin_settings("audit.export")
    f = queries.EventFilter(args.conversation, args.user, args.type, args.from_, args.to)
    counter = Counter(enabled=not args.quiet and sys.stderr.isatty())
    if args.output is None:
        asyncio.run(_export(settings.resolved_database_url, f, args.format, sys.stdout.buffer, counter, args))
    else:
        with open(args.output, "wb") as out:
            asyncio.run(_export(settings.resolved_database_url, f, args.format, out, counter, args))
    counter.done()
    return 0


async def _export(
    url: str, f: queries.EventFilter, fmt: str, out: IO[bytes], counter: Counter, args: argparse.Namespace
) -> None:
    engine = create_engine(url, pool_size=1)
    store = SqlEventStore(engine)
    try:
        async with engine.connect() as conn:
            async for chunk in export(conn, f, "csv" if fmt == "csv" else "jsonl", progress=counter):
                out.write(chunk)
        out.flush()
        await record_query(store, auditor_of(args), "export", {**f.as_filters(), "format": fmt}, counter.count)
    finally:
        await store.close()
        await engine.dispose()


def replay_main(args: argparse.Namespace) -> int:
    settings = admin_settings("audit.replay")
    state = asyncio.run(_replay(settings.resolved_database_url, args))
    if state is None:
        print(f"conversation {args.conversation} did not exist at that moment", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(orjson.dumps(state, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


async def _replay(url: str, args: argparse.Namespace) -> dict[str, object] | None:
    engine = create_engine(url, pool_size=1)
    store = SqlEventStore(engine)
    try:
        as_of = args.as_of or datetime.now(UTC)
        events = await store.read_stream(f"conversation-{args.conversation}")
        state = replay(args.conversation, events, as_of)
        filters = {"conversation_id": args.conversation, "as_of": as_of.isoformat()}
        await record_query(store, auditor_of(args), "replay", filters, len(state.messages))
        return to_json(state) if state.exists else None
    finally:
        await store.close()
        await engine.dispose()


def erase_main(args: argparse.Namespace) -> int:
    """Destroy the person's keys and record PersonalDataErased; the projections scrub their copies."""
    settings = admin_settings("audit.erase")
    position = asyncio.run(_erase(settings.resolved_database_url, args))
    print(f"erased: personal data of {args.user} is no longer readable (PersonalDataErased at position {position})")
    return 0


async def _erase(url: str, args: argparse.Namespace) -> int:
    engine = create_engine(url, pool_size=1)
    store = SqlEventStore(engine)
    try:
        by = str(args.by) if args.by else f"os:{getpass.getuser()}"
        result = await erase_person(store, args.user, erased_by=by, reason=args.reason, reference=args.reference)
        return result.last_position
    finally:
        await store.close()
        await engine.dispose()


def retention_main(args: argparse.Namespace) -> int:
    """Expire the conversations past their kind's retention (services/audit/retention.py)."""
    settings = admin_settings("audit.retention")
    expired = asyncio.run(_retention(settings))
    print(f"retention: {len(expired)} conversation(s) expired")
    return 0


async def _retention(settings: Settings) -> list[str]:
    engine = create_engine(settings.resolved_database_url, pool_size=1)
    store = SqlEventStore(engine)
    try:
        return await expire_conversations(store, engine, settings)
    finally:
        await store.close()
        await engine.dispose()
