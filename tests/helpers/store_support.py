"""What the store tests share: events of a real catalogue type, a migrated store, the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from shared.events.conversation import MessageSent
from shared.events.envelope import NewEvent
from shared.store.migrate import migrate
from shared.store.sql import SqlEventStore

REPO = Path(__file__).resolve().parents[2]
WORKLOAD = Path(__file__).with_name("store_workload.py")
LEDGERLINE = Path(sys.executable).with_name("ledgerline")
# Generous: a cold start imports SQLAlchemy, pydantic and the catalogue on a loaded 2-core machine.
PROCESS_START_SECONDS = 60


def message(conversation: str, seq: int, text: str = "hello", event_id: uuid.UUID | None = None) -> NewEvent:
    """A MessageSent for `conversation-<conversation>` (the stream id is `stream_of(conversation)`)."""
    event = MessageSent(
        conversation_id=conversation,
        message_id=f"m-{conversation}-{seq}",
        seq=seq,
        sender_id="user-a",
        client_msg_id=f"c-{seq}",
        text=text,
    )
    return NewEvent(event, actor="user-a", event_id=event_id or uuid.uuid4())


def stream_of(conversation: str) -> str:
    return f"conversation-{conversation}"


@asynccontextmanager
async def migrated_store(database_url: str, **kwargs: object) -> AsyncIterator[SqlEventStore]:
    migrate(database_url)
    store = await SqlEventStore.open(database_url, **kwargs)
    try:
        yield store
    finally:
        await store.close()


def cli_env(database_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment without any LEDGERLINE_* of the test run, plus the given settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
    if database_url is not None:
        env["LEDGERLINE_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LEDGERLINE), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO, check=False
    )


class Workload:
    """Appending processes running tests/helpers/store_workload.py, started together."""

    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs

    @classmethod
    async def start(cls, mode: str, database_url: str, names: list[str], *options: str) -> Workload:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, str(WORKLOAD), mode, database_url, "--name", name, *options,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=cli_env(), cwd=REPO,
            )
            for name in names
        ]  # fmt: skip
        workload = cls(procs)
        try:
            for proc in procs:
                assert proc.stdout is not None
                line = await asyncio.wait_for(proc.stdout.readline(), PROCESS_START_SECONDS)
                assert line == b"ready\n", f"workload process did not start: {line!r}"
        except BaseException:
            workload.kill()
            raise
        return workload

    def go(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")

    async def results(self) -> list[dict[str, Any]]:
        """Each process's answers; fails when a process failed."""
        outputs = []
        try:
            for proc in self.procs:
                out, _ = await proc.communicate()
                assert proc.returncode == 0, f"workload process exited with {proc.returncode}"
                outputs.append(orjson.loads(out))
        finally:
            self.kill()
        return outputs

    def kill(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
