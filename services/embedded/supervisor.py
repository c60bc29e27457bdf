"""Supervision of the services of the embedded stack: start, restart on crash with back-off, stop.

Every child runs in its own process group (see services.embedded.processes): signals from the terminal
reach `ledgerline up` only, and `up` decides the order in which the children stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from services.embedded.processes import spawn, terminate
from shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One supervised process: its name, command line, environment and log file."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    log_path: Path
    pass_fds: Sequence[int] = ()
    """Descriptors the child inherits under the same numbers (its listening socket)."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before restart number n (0-based): initial · factor^n, capped.

    A child that stayed up for `reset_after` seconds counts as healthy again and restarts at once
    after the initial delay: a crash an hour later is a new incident, not the tenth of a loop.
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 30.0
    reset_after: float = 30.0

    def delay(self, consecutive_failures: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, consecutive_failures - 1))


@dataclass(slots=True)
class _Child:
    spec: ChildSpec
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None
    failures: int = 0
    restarts: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    stop_deadline: float = 10.0


class Supervisor:
    """Runs each ChildSpec, restarts it when it exits unexpectedly, and stops all of them on request.

    Each child has one task that owns its process from spawn to exit, so stopping is a request to
    that task (never a cancellation), and a process being spawned while stop() runs is still stopped.
    """

    def __init__(self, backoff: Backoff | None = None) -> None:
        self._backoff = backoff or Backoff()
        self._children: dict[str, _Child] = {}

    @property
    def names(self) -> list[str]:
        return list(self._children)

    def pid(self, name: str) -> int | None:
        proc = self._children[name].proc
        return proc.pid if proc is not None and proc.returncode is None else None

    def restarts(self, name: str) -> int:
        return self._children[name].restarts

    async def start(self, spec: ChildSpec) -> None:
        """Start a child and keep it running until stop(); returns once its first process exists."""
        if spec.name in self._children:
            raise ValueError(f"a child named {spec.name!r} is supervised already")
        child = _Child(spec)
        self._children[spec.name] = child
        child.task = asyncio.create_task(self._keep_running(child), name=f"supervise-{spec.name}")
        started = asyncio.create_task(child.started.wait())
        await asyncio.wait({started, child.task}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if child.task.done():
            child.task.result()  # spawning failed: raise the error here

    async def _keep_running(self, child: _Child) -> None:
        while not child.stop_requested.is_set():
            started_at = time.monotonic()
            child.proc = proc = await self._spawn(child.spec)
            child.started.set()
            if not await _first_of(proc.wait(), child.stop_requested.wait()):
                await self._terminate(child, proc)
                return
            failed_fast = time.monotonic() - started_at < self._backoff.reset_after
            child.failures = child.failures + 1 if failed_fast else 1
            delay = self._backoff.delay(child.failures)
            log.warning(
                "child_exited",
                child=child.spec.name,
                pid=proc.pid,
                exit_code=proc.returncode,
                restart_in_seconds=delay,
                log_file=str(child.spec.log_path),
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.stop_requested.wait(), delay)
            child.restarts += 1

    async def _spawn(self, spec: ChildSpec) -> asyncio.subprocess.Process:
        # A header in the child's log separates its runs: "why did it restart" starts there.
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("a") as out:
            out.write(f"\n=== ledgerline up: starting {spec.name} at {datetime.now(UTC).isoformat()} ===\n")
        proc = await spawn(spec.argv, spec.env, spec.log_path, spec.pass_fds)
        log.info("child_started", child=spec.name, pid=proc.pid, log_file=str(spec.log_path))
        return proc

    async def _terminate(self, child: _Child, proc: asyncio.subprocess.Process) -> None:
        started = time.monotonic()
        code = await terminate(proc, child.stop_deadline, child.spec.name)
        log.info(
            "child_stopped",
            child=child.spec.name,
            pid=proc.pid,
            exit_code=code,
            seconds=round(time.monotonic() - started, 2),
        )

    async def stop(self, deadline: float, names: Sequence[str] | None = None) -> None:
        """Stop the named children (all by default) together: SIGTERM, SIGKILL after `deadline` seconds."""
        chosen = [self._children[n] for n in (names if names is not None else self._children)]
        for child in chosen:
            child.stop_deadline = deadline
            child.stop_requested.set()
        await asyncio.gather(*(child.task for child in chosen if child.task is not None))


async def _first_of(exited: Awaitable[int], stop: Awaitable[bool]) -> bool:
    """True when the process exited by itself, False when stop was requested first."""
    exit_task = asyncio.ensure_future(exited)
    stop_task = asyncio.ensure_future(stop)
    await asyncio.wait({exit_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    stop_requested = stop_task.done()
    stop_task.cancel()
    exit_task.cancel()
    return not stop_requested
