"""`ledgerline projections status` and `ledgerline projections rebuild [NAME]`."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.admin.common import ProgressLine, admin_settings
from services.projections.rebuild import PartitionStatus, rebuild, status
from services.projections.tables import PROJECTIONS
from shared.store.engine import create_engine
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore


def status_main(args: argparse.Namespace) -> int:
    settings = admin_settings("projections.status")
    rows = asyncio.run(_status(settings.resolved_database_url, settings.partitions))
    print(f"{'projection':<12} {'partition':>9} {'checkpoint':>12} {'lag':>10} {'head':>12}")
    for r in rows:
        print(f"{r.projection:<12} {r.partition:>9} {r.checkpoint:>12} {r.pending:>10} {r.head:>12}")
    return 0


async def _status(url: str, partitions: int) -> list[PartitionStatus]:
    engine = create_engine(url, pool_size=1)
    try:
        return await status(engine, partitions)
    finally:
        await engine.dispose()


def rebuild_main(args: argparse.Namespace) -> int:
    settings = admin_settings("projections.rebuild")
    names = [args.name] if args.name else list(PROJECTIONS)
    url = settings.resolved_database_url
    migrate(url)  # the rm_* tables must exist to be swapped out
    progress = ProgressLine(f"rebuild {', '.join(names)}", enabled=not args.quiet)
    head = asyncio.run(_rebuild(url, names, settings.partitions, progress))
    print(f"rebuilt {', '.join(names)} up to position {head}", file=sys.stderr)
    return 0


async def _rebuild(url: str, names: list[str], partitions: int, progress: ProgressLine) -> int:
    engine = create_engine(url, pool_size=2)
    store = await SqlEventStore.open(url)
    try:
        return await rebuild(engine, store, names, partitions=partitions, progress=progress)
    finally:
        await store.close()
        await engine.dispose()
