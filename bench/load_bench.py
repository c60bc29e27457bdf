"""`make bench`'s short load run: the load generator (bench/load) on the embedded profile at 100
messages/s for 10 s, 100 users in 2 processes; its files go to bench/results/. The full runs:
`make load` (docs/benchmarks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.load import driver

OUT = Path(__file__).resolve().parent / "results"


async def run(rate: float = 100.0, seconds: float = 10.0) -> dict[str, Any]:
    result = await driver.run("embedded", rate, seconds, users=100, processes=2, out=OUT)
    return {
        "accepted_per_s": result["accepted_per_s"],
        "errors": result["error_total"],
        "missing": result["delivery"]["missing"],
        "duplicated": result["delivery"]["duplicated"],
        "send_to_receive": {k: v for k, v in result["send_to_receive"].items() if k != "count"},
        "send_to_read_model_p99_ms": result["send_to_read_model"]["p99_ms"],
        "load_average": result["load_average"]["mean_1min"],
    }
