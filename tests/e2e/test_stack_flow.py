"""The stream flows end to end on `ledgerline up`: an event appended through the store (as the
gateway's commands will) is published by the gateway's relay to the embedded NATS and reaches every
worker kind, whose counting handlers show it on their /metrics. Every wait is bounded."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers.flow_events import append_messages

from services.embedded.ports import free_port
from shared.store.sql import SqlEventStore

pytestmark = pytest.mark.slow

START_TIMEOUT = 90.0  # four Python services on a busy 2-core machine
FLOW_TIMEOUT = 30.0
WORKERS = ("delivery", "projections", "tickets")


class RunningStack:
    def __init__(self, proc: subprocess.Popen[bytes], out: Path, data_dir: Path) -> None:
        self.proc, self.out, self.data_dir = proc, out, data_dir
        self.urls: dict[str, str] = {}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
    env["LEDGERLINE_LOG_FORMAT"] = "json"
    out, data_dir = tmp_path / "up.out", tmp_path / "data"
    with out.open("wb") as stdout, (tmp_path / "up.err").open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--data-dir", str(data_dir), "--port", str(free_port())],
            stdout=stdout,
            stderr=stderr,
            env=env,
            start_new_session=True,
        )
    running = RunningStack(proc, out, data_dir)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "Ledgerline is up." not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "up.err").read_text()[-3000:]
            time.sleep(0.2)
        for line in out.read_text().splitlines():
            if m := re.match(r"\s+(gateway|delivery health|projections health|tickets health):\s+(\S+)", line):
                running.urls[m.group(1).split()[0]] = m.group(2)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def seen(metrics_text: str, kind: str) -> int:
    pattern = rf'ledgerline_worker_events_seen_total\{{kind="{kind}",type="MessageSent"\}} ([0-9.e+]+)'
    m = re.search(pattern, metrics_text)
    return int(float(m.group(1))) if m else 0


async def test_an_event_appended_through_the_store_reaches_every_worker_kind(stack: RunningStack) -> None:
    store = await SqlEventStore.open(f"sqlite+aiosqlite:///{stack.data_dir / 'ledgerline.db'}")
    try:
        await append_messages(store, streams=3, per_stream=4)
    finally:
        await store.close()
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=5) as http:
        deadline = asyncio.get_running_loop().time() + FLOW_TIMEOUT
        while True:
            for kind in WORKERS:
                counts[kind] = seen((await http.get(f"{stack.urls[kind]}/metrics")).text, kind)
            if all(n >= 12 for n in counts.values()) or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        gateway = (await http.get(f"{stack.urls['gateway']}/metrics")).text
        ready = (await http.get(f"{stack.urls['gateway']}/readyz")).json()
    assert counts == dict.fromkeys(WORKERS, 12), counts
    assert "ledgerline_relay_leader 1.0" in gateway
    assert "ledgerline_relay_published_total 12.0" in gateway
    assert ready["checks"]["relay"] == "ok"
