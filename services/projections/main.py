"""`ledgerline projections`: the projections worker process, configured by LEDGERLINE_* variables."""

from __future__ import annotations

import argparse

from services.common.worker_service import worker_main
from services.projections.handlers import KIND, build_handler


def main(args: argparse.Namespace) -> int:
    return worker_main(KIND, build_handler)
