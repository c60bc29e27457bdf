"""`ledgerline events tail`: CloudEvents JSON lines from a position, and --follow printing an event
appended after it started."""

from __future__ import annotations

import asyncio

from helpers.store_support import LEDGERLINE, REPO, cli_env, message, migrated_store, run_cli, stream_of

from shared.events.cloudevents import from_cloudevent_bytes

LINE_WAIT_SECONDS = 60.0  # a hang detector: the process is started cold on a busy 2-core machine


async def test_tail_prints_cloudevents_from_a_position(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        await store.append(stream_of("e"), [message("e", n, f"text {n}") for n in range(1, 6)])
        stored = await store.read_all()

    done = run_cli("events", "tail", "--from-position", "3", env=cli_env(database_url))

    assert done.returncode == 0, done.stderr
    printed = [from_cloudevent_bytes(line.encode()) for line in done.stdout.splitlines()]
    assert [e.position for e in printed] == [3, 4, 5]
    assert printed == stored[2:]


async def test_tail_follow_prints_an_event_appended_afterwards(database_url: str) -> None:
    async with migrated_store(database_url) as store:
        await store.append(stream_of("f"), [message("f", 1, "before")])
        proc = await asyncio.create_subprocess_exec(
            str(LEDGERLINE), "events", "tail", "--follow", env=cli_env(database_url), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            first = await asyncio.wait_for(proc.stdout.readline(), LINE_WAIT_SECONDS)
            assert from_cloudevent_bytes(first).payload["text"] == "before"

            await store.append(stream_of("f"), [message("f", 2, "after")])
            second = await asyncio.wait_for(proc.stdout.readline(), LINE_WAIT_SECONDS)
            followed = from_cloudevent_bytes(second)
            assert (followed.position, followed.payload["text"]) == (2, "after")
            assert proc.returncode is None  # still following
        finally:
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()
