"""`ledgerline relay`: the relay alone, for operators who run it apart from the gateway.

Configured like every service (LEDGERLINE_DATABASE_URL, LEDGERLINE_BROKER_URL, LEDGERLINE_WORKER_PORT
for its /healthz, /readyz and /metrics). Any number may run: one leads, the others stand by. The
service wiring lives with the other services (services.common.relay_service); it is imported here,
when the command runs, so that shared/ does not depend on services/ at import time.
"""

from __future__ import annotations

import argparse


def main(args: argparse.Namespace) -> int:
    from services.common.relay_service import relay_main

    return relay_main()
