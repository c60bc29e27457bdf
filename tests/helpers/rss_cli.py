"""Run `ledgerline ARGS…` in this process, then append its peak resident set size (KiB) to the file
named by RSS_OUT: how a test measures the memory one CLI run needed."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from services.cli import main

if __name__ == "__main__":
    code = main(sys.argv[1:])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(os.environ["RSS_OUT"]).write_text(str(peak))
    sys.exit(code)
