"""A relay process for the crash tests: the real Relay (lock, checkpoint, publisher) on a broker
namespace of the test's own. `--hold` seconds pass between a confirmed publish and the checkpoint
write, so that a SIGKILL most likely lands in that window and the next relay republishes.

    python tests/helpers/relay_proc.py --broker URL --namespace NS --db URL [--page-size 50] [--hold 0.05]
    (run with PYTHONPATH=<repo>:<repo>/tests, as tests/helpers/processes.py does)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Sequence

from shared.broker.factory import connect_broker
from shared.broker.port import EventPublisher
from shared.broker.relay import Relay, RelayOptions
from shared.events.envelope import RecordedEvent
from shared.logging import configure_logging
from shared.store.sql import SqlEventStore


class Holding:
    def __init__(self, inner: EventPublisher, hold: float) -> None:
        self._inner = inner
        self._hold = hold

    async def publish_events(self, events: Sequence[RecordedEvent]) -> None:
        await self._inner.publish_events(events)
        await asyncio.sleep(self._hold)


async def main(args: argparse.Namespace) -> None:
    store = await SqlEventStore.open(args.db)
    broker = await connect_broker(args.broker, namespace=args.namespace, source="ledgerline/relay")
    options = RelayOptions(page_size=args.page_size, idle_wait=0.2, standby_retry=0.5, retry_base=0.05, retry_max=0.5)
    relay = Relay.for_database(store, Holding(broker, args.hold), store.engine, args.db, options=options)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await relay.start()
    await stop.wait()
    await relay.stop()
    await broker.close()
    await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--page-size", type=int, default=50)
    parser.add_argument("--hold", type=float, default=0.0)
    configure_logging("relay-proc", "info", "json")
    asyncio.run(main(parser.parse_args()))
