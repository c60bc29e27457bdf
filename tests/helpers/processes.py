"""Child processes of the crash tests: started with the repository and tests/ on PYTHONPATH, output
to files, killed by pid (SIGKILL) or stopped (SIGTERM) — never by name."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HELPERS = Path(__file__).resolve().parent


class Child:
    def __init__(self, name: str, script: str, args: list[str], log_dir: Path) -> None:
        self.name = name
        self.out = log_dir / f"{name}.out"
        self.err = log_dir / f"{name}.err"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'tests'}"
        with self.out.open("wb") as stdout, self.err.open("wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, str(HELPERS / script), *args], stdout=stdout, stderr=stderr, env=env, cwd=ROOT
            )

    def log_events(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.err.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == event:
                    found.append(record)
        return found

    def printed(self, text: str) -> bool:
        return text in self.out.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as a crash or an OOM kill."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return f"--- {self.name} stderr ---\n{self.err.read_text()[-3000:]}"


async def wait_until(condition: Callable[[], bool], timeout: float, what: str, children: Sequence[Child] = ()) -> float:
    """Poll `condition` (without blocking the event loop) until it holds; the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            tails = "\n".join(c.tail() for c in children)
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tails}")
        await asyncio.sleep(0.02)
    return time.monotonic() - started
