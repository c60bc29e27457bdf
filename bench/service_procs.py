"""Real `ledgerline` service processes for the benchmarks: start one, wait until /readyz answers 200,
stop them all (SIGTERM, then SIGKILL after a grace). One copy for chat_bench, tickets_bench and
realtime_bench; each process logs to `<tmp>/<service>.log`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx

START_TIMEOUT = 60.0
STOP_GRACE = 15.0


def spawn(service: str, env: dict[str, str], tmp: Path) -> subprocess.Popen[bytes]:
    with (tmp / f"{service}.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "services.cli", service], env=env, stdout=log, stderr=log)


async def until_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    """Poll `url` (a /readyz) until 200; fail at once if the process exits, or after `timeout`."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def stop_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to all (they drain side by side), then SIGKILL whatever outlives the grace."""
    procs = list(procs)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
