"""`python -m bench.load --profile pg-nats --rate 500 --duration 60 --users 200 --out bench/results/`

Several rates (`--rate 100 300 500`) run one after the other, each on a fresh stack; a combined
Markdown table of every run goes to <out>/load-<profile>.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from bench.load import driver, report
from bench.load.profiles import PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=PROFILES, default="embedded")
    parser.add_argument(
        "--rate", type=float, nargs="+", default=[100.0], help="messages/s offered (several: one run each)"
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending per run")
    parser.add_argument("--users", type=int, default=200, help="simulated users in all")
    parser.add_argument("--processes", type=int, default=2, help="generator processes")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    results = [
        asyncio.run(driver.run(args.profile, rate, args.duration, args.users, args.processes, args.out))
        for rate in args.rate
    ]
    if len(results) > 1:
        (args.out / f"load-{args.profile}.md").write_text(report.markdown(results))
    print(report.markdown(results))
    failed = any(r["error_total"] or r["delivery"]["missing"] or r["delivery"]["duplicated"] for r in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
