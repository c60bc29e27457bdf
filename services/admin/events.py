"""`ledgerline events tail`: print events as CloudEvents JSON lines, optionally following new ones."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.admin.common import admin_settings
from shared.events.cloudevents import to_cloudevent_bytes
from shared.store.sql import SqlEventStore

PAGE = 1000
FOLLOW_WAIT_SECONDS = 5.0


def tail_main(args: argparse.Namespace) -> int:
    settings = admin_settings("events.tail")
    try:
        asyncio.run(_tail(settings.resolved_database_url, max(args.from_position, 1), args.follow, settings.partitions))
    except BrokenPipeError:  # `ledgerline events tail | head` is fine
        return 0
    return 0


async def _tail(url: str, first_position: int, follow: bool, partitions: int) -> None:
    store = await SqlEventStore.open(url)
    out = sys.stdout.buffer
    after = first_position - 1  # read_all's bound is exclusive
    try:
        while True:
            batch = await store.read_all(after, PAGE)
            for event in batch:
                out.write(to_cloudevent_bytes(event, "ledgerline/cli", partitions) + b"\n")
            out.flush()
            if batch:
                after = batch[-1].position
                continue
            if not follow:
                return
            await store.wait_for_events(after, FOLLOW_WAIT_SECONDS)
    finally:
        await store.close()
