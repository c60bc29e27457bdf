"""Real `ledgerline <service>` processes for the operations tests: started from the CLI with
LEDGERLINE_* variables only, JSON logs to a file, stopped by pid (SIGTERM) or killed (SIGKILL).

On the machine's shared NATS every run takes a broker namespace of its own
(LEDGERLINE_BROKER_NAMESPACE), so the contract's stream names are never touched; `drop_namespace`
removes its streams at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from services.embedded.ports import free_port
from shared.broker.factory import connect_broker

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # a Python service importing FastAPI, SQLAlchemy and nats on a busy 2-core machine


class ServiceProcess:
    def __init__(self, command: str, env: dict[str, str], log_dir: Path, name: str | None = None) -> None:
        self.command = command
        self.name = name or command
        self.port = int(env.get("LEDGERLINE_GATEWAY_PORT" if command == "gateway" else "LEDGERLINE_WORKER_PORT", 0))
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"{self.name}.log"
        self._env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        base = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERLINE_")}
        # Appended to, so that a restarted service's lines stay with the first run's.
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", self.command],
                env=base | self._env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        """SIGTERM: the graceful stop an orchestrator asks for."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 20.0) -> None:
        if not self.alive():
            return
        self.terminate()
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.wait(10)

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines (anything else, such as a traceback, is skipped here)."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return found

    def tail(self) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} ---\n{text[-4000:]}"

    async def ready(self, http: httpx.AsyncClient, timeout: float = START_TIMEOUT) -> None:
        await wait_status(http, self, 200, timeout)


async def readyz(http: httpx.AsyncClient, service: ServiceProcess, timeout: float = 5.0) -> httpx.Response | None:
    try:
        return await http.get(f"{service.url}/readyz", timeout=timeout)
    except httpx.TransportError:
        return None


async def wait_status(
    http: httpx.AsyncClient, service: ServiceProcess, status: int, timeout: float, request_timeout: float = 5.0
) -> dict[str, Any]:
    """Poll /readyz until it answers `status`; its body. Fails after `timeout` with the service's log.
    A request that gets no answer within `request_timeout` counts as no answer (as for a probe)."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if not service.alive():
            raise AssertionError(f"{service.name} exited while waiting for /readyz {status}\n{service.tail()}")
        r = await readyz(http, service, request_timeout)
        if r is not None:
            if r.status_code == status:
                body: dict[str, Any] = r.json()
                return body
            last = f"{r.status_code} {r.text[:500]}"
        if time.monotonic() > deadline:
            raise AssertionError(f"/readyz of {service.name} not {status} after {timeout} s: {last}\n{service.tail()}")
        await asyncio.sleep(0.2)


def service_env(
    database_url: str, broker_url: str, namespace: str, data_dir: Path, **settings: object
) -> dict[str, str]:
    """LEDGERLINE_* variables for one service; `settings` override (lower-case names, as in Settings)."""
    env = {
        "LEDGERLINE_DATABASE_URL": database_url,
        "LEDGERLINE_BROKER_URL": broker_url,
        "LEDGERLINE_BROKER_NAMESPACE": namespace,
        "LEDGERLINE_DATA_DIR": str(data_dir),
        "LEDGERLINE_LOG_FORMAT": "json",
        "LEDGERLINE_PARTITIONS": "4",
        "LEDGERLINE_RATE_LIMIT_PER_MINUTE": "0",
    }
    env.update({f"LEDGERLINE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def gateway_env(base: dict[str, str], secret: str) -> dict[str, str]:
    return base | {"LEDGERLINE_GATEWAY_PORT": str(free_port()), "LEDGERLINE_JWT_SECRET": secret}


def worker_env(base: dict[str, str]) -> dict[str, str]:
    return base | {"LEDGERLINE_WORKER_PORT": str(free_port())}


async def drop_namespace(broker_url: str, namespace: str) -> None:
    broker = await connect_broker(broker_url, namespace=namespace)
    try:
        await broker.delete_topology(())  # type: ignore[attr-defined]  # the NATS adapter's
    finally:
        await broker.close()
