"""`ledgerline audit verify [--checkpoint FILE]` and `ledgerline audit checkpoint` (docs/audit.md).

Exit codes: 0 intact (or checkpoint written); 1 tampering found, or a checkpoint that cannot be
trusted, each named on stdout; 2 a configuration problem (services/cli.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from services.admin.common import ProgressLine, admin_settings
from services.audit import checkpoint as cp
from shared.store.engine import create_engine
from shared.store.hashing import format_time
from shared.store.sql import SqlEventStore
from shared.store.verify import VerifyResult, verify_chain


def verify_main(args: argparse.Namespace) -> int:
    """Exit 0 and print the head when the chain is intact; exit 1 naming the first bad position."""
    settings = admin_settings("audit.verify")
    anchor: cp.Checkpoint | None = None
    if getattr(args, "checkpoint", None) is not None:
        try:
            anchor = cp.load(Path(args.checkpoint))
            cp.check_signature(anchor, cp.verify_key(settings))
        except cp.CheckpointError as e:
            print(f"UNTRUSTED CHECKPOINT: {e}")
            return 1
    progress = ProgressLine("verifying", enabled=not args.quiet and sys.stderr.isatty())
    result = asyncio.run(_verify(settings.resolved_database_url, args.page_size, progress, anchor))
    if not result.ok:
        print(
            f"TAMPERED: first bad position {result.bad_position}: {result.problem} "
            f"({result.checked} events before it verified)"
        )
        return 1
    if anchor is not None:
        problem = _against(result, anchor)
        if problem is not None:
            print(problem)
            return 1
    print(f"ok: chain intact; {result.checked} events; head position {result.head_position} hash {result.head_hash}")
    if anchor is not None:
        print(f"ok: matches the checkpoint at position {anchor.position} (key {anchor.key_id}, {anchor.created_at})")
    return 0


def _against(result: VerifyResult, anchor: cp.Checkpoint) -> str | None:
    """What a chain intact in itself can still show against a signed checkpoint."""
    if result.head_position < anchor.position:
        return (
            f"TAMPERED: first bad position {result.head_position + 1}: the checkpoint covers position "
            f"{anchor.position} but the store ends at {result.head_position} (events were removed)"
        )
    if result.anchor_hash != anchor.hash:
        return (
            f"TAMPERED: first bad position {anchor.position} or before: the history up to position "
            f"{anchor.position} differs from the signed checkpoint (stored hash {result.anchor_hash}, "
            f"checkpoint hash {anchor.hash}): events were altered and their hashes recomputed"
        )
    return None


async def _verify(url: str, page_size: int, progress: ProgressLine, anchor: cp.Checkpoint | None) -> VerifyResult:
    engine = create_engine(url, pool_size=1)
    try:
        at = None if anchor is None else anchor.position
        return await verify_chain(engine, page_size=page_size, progress=progress, anchor=at)
    finally:
        await engine.dispose()


def checkpoint_main(args: argparse.Namespace) -> int:
    """Verify the chain, then write its head signed with the configured key (stdout or --output)."""
    settings = admin_settings("audit.checkpoint")
    key = cp.signing_key(settings)
    progress = ProgressLine("verifying", enabled=not args.quiet and sys.stderr.isatty())
    result, recorded_at = asyncio.run(_head(settings.resolved_database_url, progress))
    if not result.ok:
        print(f"TAMPERED: first bad position {result.bad_position}: {result.problem}; no checkpoint written")
        return 1
    if result.head_position == 0:
        print("the store is empty: nothing to checkpoint")
        return 1
    signed = cp.sign(
        key,
        position=result.head_position,
        hash_=result.head_hash,
        recorded_at=recorded_at,
        created_at=format_time(datetime.now(UTC)),
    )
    if args.output is None:
        sys.stdout.buffer.write(signed.to_json())
    else:
        Path(args.output).write_bytes(signed.to_json())
        print(f"checkpoint: position {signed.position} hash {signed.hash} key {signed.key_id} -> {args.output}")
    return 0


async def _head(url: str, progress: ProgressLine) -> tuple[VerifyResult, str]:
    engine = create_engine(url, pool_size=1)
    store = SqlEventStore(engine)
    try:
        result = await verify_chain(engine, progress=progress)
        head = await store.read_all(result.head_position - 1, 1) if result.head_position else []
        return result, format_time(head[0].recorded_at) if head else ""
    finally:
        await store.close()
        await engine.dispose()
