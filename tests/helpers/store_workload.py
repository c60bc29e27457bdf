"""A second (and third) appending process for the store tests: in production the gateway and the
tickets service both append to the same store.

    python tests/helpers/store_workload.py MODE DATABASE_URL --name NAME [--writers 8] [--appends 500] ...

Protocol with the test: the process opens the store, prints `ready`, waits for one line on stdin (so
that both processes start appending at once), runs MODE and prints one JSON line with what each
append answered.

Modes:
- one-stream: every writer appends to the one stream --stream with the next expected version this
  process hands out (pipelined: a writer does not wait for the append before it, so one batch
  holds consecutive appends to the stream); on WrongExpectedVersion (the other process appended,
  or an append before it failed) the writer reloads the stream and retries with fresh event ids,
  so that anything a failed append left behind would show as an extra event;
- many-streams: writer w appends to its own --streams-per-writer streams in turn, expected versions known;
- idempotent: writers append --appends events with ids derived from --seed (the same in both
  processes), stream `conversation-idem-<i>`, expected version NO_STREAM; answers are printed;
- append-one: one event to --stream, expected version ANY.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.store_support import message, stream_of
from shared.events.ids import deterministic_id
from shared.store.port import ANY, NO_STREAM, AppendResult, WrongExpectedVersion
from shared.store.sql import SqlEventStore

Answer = dict[str, Any]


def answer(result: AppendResult, tag: str) -> Answer:
    return {
        "tag": tag,
        "stream_id": result.stream_id,
        "first_version": result.first_version,
        "last_version": result.last_version,
        "first_position": result.first_position,
        "last_position": result.last_position,
        "event_ids": [str(i) for i in result.event_ids],
    }


@dataclass
class HotStream:
    """This process's view of the one stream. Writers take the next expected version from it and
    append without waiting for the one before (so that one batch holds several appends to the
    stream). When the other process appended, the first append to fail reloads the stream (a new
    epoch) while the others wait; the failures of appends handed out before it just retry."""

    version: int = 0
    epoch: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    conflicts: int = 0

    def __post_init__(self) -> None:
        self.ready.set()

    async def next_expected(self) -> tuple[int, int]:
        await self.ready.wait()
        self.version += 1
        return self.version - 1, self.epoch

    async def reload(self, store: SqlEventStore, stream: str, failed: WrongExpectedVersion, epoch: int) -> None:
        self.conflicts += 1
        if epoch != self.epoch:
            return  # handed out before the last reload: the reload already accounted for it
        self.epoch += 1
        self.ready.clear()
        try:
            newer = await store.read_stream(stream, from_version=max(failed.actual, 1))
            self.version = newer[-1].stream_version if newer else failed.actual
        finally:
            self.ready.set()


HOT: dict[str, HotStream] = {}


async def one_stream_writer(store: SqlEventStore, args: argparse.Namespace, writer: int) -> tuple[list[Answer], int]:
    stream, hot, answers = stream_of(args.stream), HOT.setdefault(args.stream, HotStream()), []
    for n in range(args.appends):
        tag = f"{args.name}:{writer}:{n}"
        while True:
            expected, epoch = await hot.next_expected()
            try:
                result = await store.append(stream, [message(args.stream, n + 1, tag)], expected)
                break
            except WrongExpectedVersion as e:
                assert (e.stream_id, e.expected) == (stream, expected) and e.actual != expected, e
                await hot.reload(store, stream, e, epoch)
        answers.append(answer(result, tag))
    return answers, 0


async def many_streams_writer(store: SqlEventStore, args: argparse.Namespace, writer: int) -> tuple[list[Answer], int]:
    versions: dict[str, int] = {}
    answers = []
    for n in range(args.appends):
        conversation = f"{args.name}-w{writer}-s{n % args.streams_per_writer}"
        stream, tag = stream_of(conversation), f"{args.name}:{writer}:{n}"
        result = await store.append(stream, [message(conversation, n + 1, tag)], versions.get(stream, 0))
        versions[stream] = result.last_version
        answers.append(answer(result, tag))
    return answers, 0


async def idempotent_writer(store: SqlEventStore, args: argparse.Namespace, writer: int) -> tuple[list[Answer], int]:
    answers = []
    # Every writer of every process appends every event, in a different order, at once.
    order = list(range(args.appends))
    order = order[writer % len(order) :] + order[: writer % len(order)]
    for i in order:
        event = message(f"idem-{i}", 1, f"idem {i}", event_id=deterministic_id("store-test", args.seed, str(i)))
        result = await store.append(stream_of(f"idem-{i}"), [event], expected_version=NO_STREAM)
        answers.append(answer(result, str(i)))
    return answers, 0


async def append_one(store: SqlEventStore, args: argparse.Namespace, writer: int) -> tuple[list[Answer], int]:
    result = await store.append(stream_of(args.stream), [message(args.stream, 1, args.name)], expected_version=ANY)
    return [answer(result, args.name)], 0


MODES = {
    "one-stream": one_stream_writer,
    "many-streams": many_streams_writer,
    "idempotent": idempotent_writer,
    "append-one": append_one,
}


async def main(args: argparse.Namespace) -> None:
    store = await SqlEventStore.open(args.database_url)
    try:
        await store.head()  # connected before `ready`, so that both processes start on an equal footing
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        writer = MODES[args.mode]
        done = await asyncio.gather(*(writer(store, args, w) for w in range(args.writers)))
    finally:
        await store.close()
    answers = [a for writer_answers, _ in done for a in writer_answers]
    conflicts = sum(c for _, c in done) + sum(h.conflicts for h in HOT.values())
    sys.stdout.buffer.write(orjson.dumps({"answers": answers, "conflicts": conflicts}) + b"\n")
    sys.stdout.flush()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("database_url")
    parser.add_argument("--name", required=True)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--appends", type=int, default=500)
    parser.add_argument("--stream", default="shared")
    parser.add_argument("--streams-per-writer", type=int, default=25)
    parser.add_argument("--seed", default="seed")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
