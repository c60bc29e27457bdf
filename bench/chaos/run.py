"""The chaos run: the stack as real processes on a fresh PostgreSQL database and an embedded NATS of its
own, a steady chat load, faults injected in turn while it runs, then the checker.

    python -m bench.chaos [--rounds N] [--rate MSG_PER_S] [--steady SECONDS] [--json out.json]

Faults, each bounded in time: kill -9 of each service (gateway, delivery, projections, tickets) and its restart;
kill -9 of the NATS server and its restart (same port, same JetStream store); the projections worker's broker
connection cut through a TCP proxy and restored. The machine's shared servers are never stopped: PostgreSQL
stays up (a private instance cannot be started here: initdb refuses to run as root), NATS is our own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from helpers.service_procs import ServiceProcess, gateway_env, service_env, worker_env
from helpers.tcp_proxy import TcpProxy

from bench.chaos.check import Report, run_check, settle
from bench.chaos.load import Load
from services.embedded.nats_server import EmbeddedNats
from shared.store.engine import create_engine
from shared.store.migrate import migrate

SECRET = "chaos-run-secret-0123456789abcdef0123"
PG_ADMIN = os.environ.get("CHAOS_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URL = os.environ.get("CHAOS_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
WORKERS = ("delivery", "projections", "tickets")
RESTART_TIMEOUT = 90.0
PARTITIONS = 4  # service_env's LEDGERLINE_PARTITIONS


@dataclass
class FaultLog:
    round: int
    fault: str
    seconds: float
    accepted_during: int
    note: str = ""


@dataclass
class Outcome:
    rounds: int
    rate: float
    faults: list[FaultLog] = field(default_factory=list)
    accepted: int = 0
    retries: int = 0
    gave_up: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    reconnects: int = 0
    seconds: float = 0.0
    settle_seconds: float = 0.0
    lagging_streams: int = 0
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)
    machine: str = ""
    report: dict[str, Any] = field(default_factory=dict)


class Stack:
    """gateway + three workers as `ledgerline` processes; projections reaches NATS through a proxy."""

    def __init__(self, database_url: str, nats: EmbeddedNats, proxy: TcpProxy, logs: Path) -> None:
        self.nats, self.proxy = nats, proxy
        base = service_env(database_url, nats.url, f"chaos{uuid.uuid4().hex[:6]}", logs / "data", jwt_secret=SECRET,
                           log_level="warning")  # fmt: skip
        self.services: dict[str, ServiceProcess] = {
            "gateway": ServiceProcess("gateway", gateway_env(base, SECRET), logs)
        }
        for kind in WORKERS:
            env = worker_env(base)
            if kind == "projections":
                env["LEDGERLINE_BROKER_URL"] = f"nats://{proxy.address}"
            self.services[kind] = ServiceProcess(kind, env, logs)
        self.http = httpx.AsyncClient(timeout=5)

    @property
    def gateway_url(self) -> str:
        return self.services["gateway"].url

    async def start(self) -> None:
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            await service.ready(self.http, RESTART_TIMEOUT)

    async def kill_and_restart(self, name: str) -> str:
        service = self.services[name]
        os.kill(service.pid, signal.SIGKILL)
        service.wait(10)
        await asyncio.sleep(1.0)  # down for a moment, as a crashed process before its supervisor restarts it
        service.start()
        await service.ready(self.http, RESTART_TIMEOUT)
        return f"pid {service.pid}"

    async def restart_nats(self) -> str:
        pid = self.nats.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await self.nats.wait()
        await asyncio.sleep(2.0)
        await self.nats.start()  # the same port and JetStream store
        for service in self.services.values():
            await service.ready(self.http, RESTART_TIMEOUT)
        return f"nats pid {pid} -> {self.nats.pid}"

    async def cut_broker_link(self, seconds: float) -> str:
        await self.proxy.cut()
        await asyncio.sleep(seconds)
        await self.proxy.restore()
        await self.services["projections"].ready(self.http, RESTART_TIMEOUT)
        return f"projections cut off from NATS for {seconds:.0f} s"

    async def stop(self) -> None:
        for service in self.services.values():
            service.stop()
        await self.http.aclose()


def faults(stack: Stack, cut_seconds: float) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
    plan: list[tuple[str, Callable[[], Awaitable[str]]]] = [
        (f"kill -9 {name}", lambda name=name: stack.kill_and_restart(name))  # type: ignore[misc]
        for name in ("gateway", *WORKERS)
    ]
    plan.append(("kill -9 nats-server", stack.restart_nats))
    plan.append(("cut projections<->NATS", lambda: stack.cut_broker_link(cut_seconds)))
    return plan


async def settled(database_url: str, timeout: float) -> tuple[float, int]:
    """Wait until the chat projection has applied every stored conversation event (bounded): the seconds
    it took and the streams still lagging (0: settled)."""
    engine = create_engine(database_url)
    began = time.monotonic()
    try:
        lagging = await settle(engine, PARTITIONS, timeout)
    finally:
        await engine.dispose()
    return time.monotonic() - began, lagging


async def run(
    rounds: int, rate: float, steady: float, cut_seconds: float, size: dict[str, int], keep: Path | None
) -> Outcome:
    outcome = Outcome(rounds=rounds, rate=rate, machine=f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs")
    name = f"ledgerline_chaos_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = PG_URL.format(name=name)
    # Kept runs keep the JetStream store too (beside the logs), to look at the stream's order afterwards.
    tmp = keep or Path(tempfile.mkdtemp(prefix="chaos-"))
    logs = tmp
    logs.mkdir(parents=True, exist_ok=True)
    try:
        migrate(database_url)
        async with EmbeddedNats(tmp / "nats") as nats, TcpProxy("127.0.0.1", int(nats.url.rsplit(":", 1)[1])) as proxy:
            stack = Stack(database_url, nats, proxy, logs)
            try:
                await stack.start()
                load = Load(stack.gateway_url, SECRET, rate=rate)
                await load.setup(size["directs"], size["groups"], size["group_size"], size["receivers"])
                began = time.monotonic()
                await load.start()
                await asyncio.sleep(steady)
                for r in range(1, rounds + 1):
                    for label, inject in faults(stack, cut_seconds):
                        before, t0 = load.counters.sent, time.monotonic()
                        note = await inject()
                        outcome.faults.append(FaultLog(r, label, round(time.monotonic() - t0, 1),
                                                       load.counters.sent - before, note))  # fmt: skip
                        print(f"round {r}: {label} ({note}) in {time.monotonic() - t0:.1f} s; "
                              f"accepted so far {load.counters.sent}", file=sys.stderr, flush=True)  # fmt: skip
                        await asyncio.sleep(steady)
                await load.stop_senders()
                outcome.seconds = round(time.monotonic() - began, 1)
                seconds, outcome.lagging_streams = await settled(database_url, 120.0)
                outcome.settle_seconds = round(seconds, 1)
                await load.finish()
            finally:
                await stack.stop()
        if keep is not None:
            load.record.dump(logs / "record.json")
            again = f"python -m bench.chaos.check --database-url {database_url} --record {logs}/record.json"
            print(f"kept the database (drop it when done) and the logs; check again: {again}", file=sys.stderr)
        report: Report = await run_check(database_url, load.record)
        outcome.accepted = load.counters.sent
        outcome.retries = load.counters.retries
        outcome.gave_up = load.counters.gave_up
        outcome.errors = dict(load.counters.errors)
        outcome.reconnects = load.counters.reconnects
        outcome.report = report.as_dict()
        outcome.load_average = os.getloadavg()
        print(report.text(), file=sys.stderr)
        return outcome
    finally:
        if keep is None:
            shutil.rmtree(tmp, ignore_errors=True)
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def stoppable(work: Awaitable[Outcome]) -> Outcome:
    """`work`, cancelled by SIGTERM as asyncio.run cancels it on Ctrl-C: its `finally` blocks stop the
    services and NATS and drop the database (a CI timeout used to leave the four services running)."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0, help="target accepted messages per second")
    parser.add_argument("--steady", type=float, default=10.0, help="seconds of plain load before and after each fault")
    parser.add_argument("--cut", type=float, default=5.0, help="seconds the broker link stays cut")
    parser.add_argument("--directs", type=int, default=20)
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--receivers", type=int, default=16)
    parser.add_argument("--keep", type=Path, help="keep logs, the record and the database here (for the checker)")
    parser.add_argument("--json", type=Path, help="write the outcome as JSON here")
    args = parser.parse_args(argv)
    size = {"directs": args.directs, "groups": args.groups, "group_size": args.group_size, "receivers": args.receivers}
    try:
        outcome = asyncio.run(stoppable(run(args.rounds, args.rate, args.steady, args.cut, size, args.keep)))
    except (asyncio.CancelledError, KeyboardInterrupt):
        print("chaos run stopped: services and NATS stopped, database dropped (unless --keep)", file=sys.stderr)
        return 130
    text = json.dumps(outcome.__dict__ | {"faults": [f.__dict__ for f in outcome.faults]}, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    return 0 if outcome.report.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
