"""`ledgerline audit …`: verify the hash chain (and, with the Audit issue, export and replay)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.admin.common import ProgressLine, admin_settings
from shared.store.engine import create_engine
from shared.store.verify import VerifyResult, verify_chain


def verify_main(args: argparse.Namespace) -> int:
    """Exit 0 and print the head when the chain is intact; exit 1 naming the first bad position."""
    settings = admin_settings("audit.verify")
    progress = ProgressLine("verifying", enabled=not args.quiet and sys.stderr.isatty())
    result = asyncio.run(_verify(settings.resolved_database_url, args.page_size, progress))
    if result.ok:
        print(
            f"ok: chain intact; {result.checked} events; head position {result.head_position} hash {result.head_hash}"
        )
        return 0
    print(
        f"TAMPERED: first bad position {result.bad_position}: {result.problem} "
        f"({result.checked} events before it verified)"
    )
    return 1


async def _verify(url: str, page_size: int, progress: ProgressLine) -> VerifyResult:
    engine = create_engine(url, pool_size=1)
    try:
        return await verify_chain(engine, page_size=page_size, progress=progress)
    finally:
        await engine.dispose()
