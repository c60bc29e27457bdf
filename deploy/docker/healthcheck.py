"""The container HEALTHCHECK: GET /healthz of the service this container runs, on the right port.

One image runs every service, so the port depends on the command: the gateway answers on
LEDGERLINE_GATEWAY_PORT (default 8080), the workers and `ledgerline relay` on LEDGERLINE_WORKER_PORT
(default 9100). The command is read from PID 1's argv (`ledgerline gateway`, `ledgerline projections`,
or the same behind an init such as `docker-init --`). One-shot commands (`migrate`, `token`, ...)
serve no HTTP: they count as healthy. Only the standard library: it runs every few seconds.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Mapping

WORKERS = {"delivery", "projections", "tickets", "relay"}


def service_of(argv: list[str]) -> str:
    """The ledgerline sub-command in a command line; "" when there is none."""
    for arg in argv[1:]:
        if not arg.startswith("-") and not arg.endswith(("ledgerline", "python", "python3")):
            return arg
    return ""


def health_port(service: str, environ: Mapping[str, str]) -> str | None:
    if service == "gateway":
        return environ.get("LEDGERLINE_GATEWAY_PORT", "8080")
    if service in WORKERS:
        return environ.get("LEDGERLINE_WORKER_PORT", "9100")
    return None


def pid1_argv() -> list[str]:
    try:
        with open("/proc/1/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def main() -> int:
    service = service_of(pid1_argv())
    port = health_port(service, os.environ)
    if port is None:
        return 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as e:
        print(f"healthcheck: {service} on port {port}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
