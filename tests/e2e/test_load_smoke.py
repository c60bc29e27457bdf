"""The load generator's short run (`python -m bench.load`) on the embedded profile (`ledgerline up`:
SQLite + embedded NATS) at a low rate for a few seconds, as a user runs it: it exits 0, every accepted
message reached every member's WebSocket exactly once (direct and group conversations), nothing
failed, and the JSON, Markdown and PNG outputs exist and parse. No figure is asserted on (speed is
bench/'s business)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)  # `ledgerline up` starts five processes on a busy 2-core machine
def test_short_load_run_delivers_every_accepted_message_once(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ["--profile", "embedded", "--rate", "10", "--duration", "3", "--users", "40", "--processes", "2"]
    run = subprocess.run(
        [sys.executable, "-m", "bench.load", *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stderr[-4000:] + run.stdout[-2000:]

    result = json.loads((out / "load-embedded-10.json").read_text())
    assert result["offered"] == 30
    assert result["accepted"] + result["not_sent_late"] == result["offered"]
    assert result["accepted"] > 0
    assert set(result["accepted_by_kind"]) == {"direct", "group"}
    assert result["errors"] == {} and result["error_total"] == 0
    delivery = result["delivery"]
    # each accepted message at each member's socket (a group has 5 members, a direct conversation 2)
    assert (
        delivery["expected_frames"]
        == 2 * result["accepted_by_kind"]["direct"] + 5 * result["accepted_by_kind"]["group"]
    )
    assert delivery["received_once"] == delivery["expected_frames"]
    assert delivery["missing"] == 0 and delivery["duplicated"] == 0
    # a latency per other member: 1 in a direct conversation, 4 in a group
    assert result["send_to_receive"]["count"] == delivery["expected_frames"] - result["accepted"]
    assert result["send_to_receive"]["p50_ms"] is not None
    assert result["send_to_read_model"]["count"] > 0
    assert {"gateway", "delivery", "projections", "nats-server"} <= set(result["resources"])
    assert all(u["rss_peak_mib"] > 0 for u in result["resources"].values())

    table = (out / "load-embedded-10.md").read_text().splitlines()
    assert table[0].startswith("| profile | offered/s | accepted/s")
    row = [cell.strip() for cell in table[2].strip("|").split("|")]
    assert row[:2] == ["embedded", "10"] and int(row[3]) == result["accepted"] and row[4] == "0"

    image = matplotlib.image.imread(out / "load-embedded-10.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
