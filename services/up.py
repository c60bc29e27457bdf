"""`ledgerline up`: the whole stack on one machine — SQLite, embedded NATS JetStream, four services.

Order of start: lock the data directory, check the gateway port, migrate once, start NATS, start the
services, wait until each answers /readyz, print where everything is. Order of stop (SIGINT or
SIGTERM): the services together (they drain while the broker is still up), then NATS. See
docs/embedded.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from services.common.lifecycle import quiet_library_loggers
from services.embedded import demo
from services.embedded.nats_server import EmbeddedNats, NatsServerError
from services.embedded.stack import (
    CHILD_KILL_AFTER,
    NATS_KILL_AFTER,
    SERVICES,
    StackError,
    StackPlan,
    child_specs,
    lock_data_dir,
    plan_stack,
    redact,
)
from services.embedded.supervisor import Supervisor
from shared.config import ENV_PREFIX, Settings, load_settings
from shared.logging import configure_logging, get_logger
from shared.store.migrate import migrate

log = get_logger(__name__)

READY_TIMEOUT = 90.0  # four Python processes importing FastAPI and SQLAlchemy on a busy 2-core machine
CRASH_LOOP_RESTARTS = 3  # a service that crashed this often before it was ever ready will not recover


def main(args: argparse.Namespace) -> int:
    settings = load_settings(data_dir=args.data_dir, gateway_port=args.port)
    explicit_format = f"{ENV_PREFIX}LOG_FORMAT" in os.environ
    fmt = settings.log_format if explicit_format or not sys.stderr.isatty() else "console"
    configure_logging("up", settings.log_level, fmt)
    quiet_library_loggers()
    try:
        return asyncio.run(_up(settings, demo=args.demo))
    except StackError as e:
        _say(str(e))
        return 1


async def _up(settings: Settings, *, demo: bool = False) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # SIGHUP too: a closed terminal should stop the stack in order, not leave it to PDEATHSIG.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    lock = lock_data_dir(settings.data_dir.resolve())
    try:
        plan = plan_stack(settings)
        try:
            await _migrate(plan.database_url)
            return await _run_stack(plan, settings.broker_url, stop, demo=demo)
        finally:
            plan.close()
    finally:
        lock.close()


async def _migrate(database_url: str) -> None:
    """Once, before the services start: they would otherwise all migrate at the same moment."""
    await asyncio.to_thread(migrate, database_url)


async def _run_stack(plan: StackPlan, broker_url: str | None, stop: asyncio.Event, *, demo: bool = False) -> int:
    nats = None if broker_url else EmbeddedNats(plan.data_dir, stop_timeout=NATS_KILL_AFTER)
    supervisor = Supervisor()
    watch: asyncio.Task[None] | None = None
    try:
        if nats is not None:
            await nats.start()
            watch = asyncio.create_task(_keep_nats_running(nats, stop))
        url = broker_url or (nats.url if nats is not None else "")
        for spec in child_specs(plan, url, os.environ):
            if stop.is_set():
                return 0
            await supervisor.start(spec)
        if not await _wait_until_ready(plan, supervisor, stop):
            return 0 if stop.is_set() else 1
        _print_summary(plan, url, nats)
        if demo:
            await _seed_demo(plan)
        await stop.wait()
        return 0
    except NatsServerError as e:
        raise StackError(str(e)) from e
    finally:
        await _stop_stack(supervisor, nats, watch)


async def _stop_stack(supervisor: Supervisor, nats: EmbeddedNats | None, watch: asyncio.Task[None] | None) -> None:
    started = time.monotonic()
    log.info("stack_stopping")
    if watch is not None:
        watch.cancel()
    await supervisor.stop(CHILD_KILL_AFTER)
    if nats is not None:
        await nats.stop()
    log.info("stack_stopped", seconds=round(time.monotonic() - started, 2))


async def _keep_nats_running(nats: EmbeddedNats, stop: asyncio.Event) -> None:
    """Restart the embedded NATS on its same port if it dies; the services' clients reconnect."""
    delay = 0.5
    while not stop.is_set():
        code = await nats.wait()
        if stop.is_set():
            return
        log.error("nats_exited", exit_code=code, restart_in_seconds=delay, log_file=str(nats.log_path))
        await asyncio.sleep(delay)
        try:
            await nats.start()
            delay = 0.5
        except NatsServerError as e:
            log.error("nats_restart_failed", error=str(e))
            delay = min(delay * 2, 30.0)


async def _wait_until_ready(plan: StackPlan, supervisor: Supervisor, stop: asyncio.Event) -> bool:
    """Poll each service's /readyz until all answer 200. False on stop, crash loop or timeout."""
    pending = set(SERVICES)
    last: dict[str, str] = {}
    deadline = time.monotonic() + READY_TIMEOUT
    async with httpx.AsyncClient(timeout=2.0) as http:
        while pending and not stop.is_set():
            for name in sorted(pending):
                last[name] = await _probe(http, plan.health_url(name) + "/readyz")
                if last[name] == "ready":
                    pending.discard(name)
                    log.info("service_ready", child=name, pid=supervisor.pid(name))
                elif supervisor.restarts(name) >= CRASH_LOOP_RESTARTS:
                    log_path = plan.log_dir / (name + ".log")
                    _say(f"{name} keeps crashing; see {log_path}; its last lines:\n{_tail(log_path)}")
                    return False
            if time.monotonic() > deadline:
                for name in sorted(pending):
                    _say(
                        f"{name} not ready after {READY_TIMEOUT:.0f} s ({last.get(name)}); "
                        f"see {plan.log_dir / (name + '.log')}"
                    )
                return False
            if pending:
                await asyncio.sleep(0.2)
    return not pending


async def _probe(http: httpx.AsyncClient, url: str) -> str:
    try:
        response = await http.get(url)
    except httpx.HTTPError as e:
        return f"no answer: {type(e).__name__}"
    return "ready" if response.status_code == 200 else f"{response.status_code}: {response.text[:200]}"


def _print_summary(plan: StackPlan, broker_url: str, nats: EmbeddedNats | None) -> None:
    broker = redact(broker_url) + (f" (embedded NATS JetStream, monitoring {nats.monitor_url})" if nats else "")
    rows = [
        ("gateway", plan.gateway_url),
        ("data dir", str(plan.data_dir)),
        ("logs", str(plan.log_dir)),
        ("database", redact(plan.database_url)),
        ("broker", broker),
        *((f"{name} health", plan.health_url(name)) for name in SERVICES[1:]),
    ]
    lines = ["Ledgerline is up.", *(f"  {key + ':':<20} {value}" for key, value in rows)]
    lines.append(f"Stop with Ctrl-C (or: kill {os.getpid()}).")
    print("\n".join(lines), flush=True)


async def _seed_demo(plan: StackPlan) -> None:
    """Seed through the API (services/embedded/demo.py); a failure is reported, the stack keeps running."""
    if plan.jwt_secret is None:
        _say("--demo needs an HS256 secret (LEDGERLINE_JWT_SECRET or the generated one), not a public key")
        return
    try:
        tokens = await demo.seed(plan.gateway_url, plan.jwt_secret, plan.data_dir)
    except (demo.DemoError, httpx.HTTPError) as e:
        _say(f"--demo: seeding failed ({e}); the stack keeps running without demo data")
        return
    print(demo.describe(tokens, plan.gateway_url), flush=True)


def _tail(path: Path, lines: int = 12) -> str:
    """The end of a child's log, to show why it crashed without sending the operator to the file."""
    try:
        with path.open("rb") as log_file:  # its end only: a long-running child's log can be large
            log_file.seek(max(0, log_file.seek(0, 2) - 16_384))
            text = log_file.read().decode(errors="replace")
    except OSError as e:
        return f"  (cannot read it: {e.strerror})"
    return "\n".join("  " + line for line in text.rstrip().splitlines()[-lines:])


def _say(message: str) -> None:
    print(f"ledgerline up: {message}", file=sys.stderr, flush=True)
