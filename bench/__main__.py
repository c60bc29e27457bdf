"""`make bench`: run every benchmark module present, each guarded so that one failing (a server down,
a bug) does not hide the others' figures, and print one summary table at the end.

    .venv/bin/python -m bench [--only store_bench] [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path
from typing import Any

MODULES = (
    "store_bench",
    "broker_bench",
    "pipeline_bench",
    "chat_bench",
    "projections_bench",
    "realtime_bench",
    "support_bench",
    "tickets_bench",
    "audit_bench",
    "load_bench",
)
BENCH_DIR = Path(__file__).resolve().parent


def flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [row for key, inner in value.items() for row in flatten(f"{prefix}.{key}" if prefix else key, inner)]
    return [(prefix, value)]


def run_module(name: str, events: int | None) -> tuple[str, dict[str, Any] | str, float]:
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"bench.{name}")
        kwargs = (
            {"events": events} if events is not None and "events" in inspect.signature(module.run).parameters else {}
        )
        result: dict[str, Any] | str = asyncio.run(module.run(**kwargs))
    except Exception:  # one benchmark failing must not hide the others (reported in the summary)
        traceback.print_exc(file=sys.stderr)
        result = f"FAILED: {traceback.format_exc(limit=0).strip().splitlines()[-1]}"
    return name, result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description="Run the Ledgerline benchmarks and print a summary.")
    parser.add_argument("--only", action="append", choices=MODULES, help="run only these modules")
    parser.add_argument("--events", type=int, default=None, help="events per run, for modules that take it")
    args = parser.parse_args()
    present = [m for m in (args.only or MODULES) if (BENCH_DIR / f"{m}.py").exists()]
    outcomes = []
    for name in present:
        print(f"=== {name}", file=sys.stderr, flush=True)
        outcomes.append(run_module(name, args.events))
    print("\nsummary")
    width = max((len(k) for _, r, _ in outcomes if isinstance(r, dict) for k, _ in flatten("", r)), default=20)
    for name, result, seconds in outcomes:
        print(f"\n{name} ({seconds:.0f} s)")
        if isinstance(result, str):
            print(f"  {result}")
            continue
        for key, value in flatten("", result):
            shown = f"{value:,}" if isinstance(value, int) else str(value)
            print(f"  {key:<{width}} {shown:>12}")
    if "store_bench" in present:
        from bench.store_bench import table

        store = next(r for n, r, _ in outcomes if n == "store_bench")
        if isinstance(store, dict):
            print("\n" + table(store))
    return 1 if any(isinstance(r, str) for _, r, _ in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
