"""The chaos run, short: the stack as real processes on a fresh PostgreSQL database and an embedded NATS,
a light chat load, one round of every fault (kill -9 of each service, of NATS, the projections worker's broker
link cut), then the checker: no 2xx message lost or doubled in the store or the read models, every receiver
got every message (live or by resync), watermarks sound, hash chain intact. `make chaos` is the full run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PG_HOST, PG_PORT, require_server

from bench.chaos.run import run

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

SMALL = {"directs": 3, "groups": 1, "group_size": 4, "receivers": 4}


async def test_one_round_of_every_fault_loses_and_doubles_nothing(tmp_path: Path) -> None:
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    outcome = await run(rounds=1, rate=20.0, steady=1.5, cut_seconds=2.0, size=SMALL, keep=None)
    assert [f.fault for f in outcome.faults] == [
        "kill -9 gateway",
        "kill -9 delivery",
        "kill -9 projections",
        "kill -9 tickets",
        "kill -9 nats-server",
        "cut projections<->NATS",
    ]
    report = outcome.report
    assert report["violations"] == [], "\n".join(report["violations"][:50])
    assert outcome.lagging_streams == 0
    assert outcome.accepted > 0 and report["accepted"] == outcome.accepted
    assert report["events_messages"] >= outcome.accepted  # a send that timed out may still have been stored
    assert report["expected_deliveries"] == report["live"] + report["resynced"] + report["offline"] > 0
