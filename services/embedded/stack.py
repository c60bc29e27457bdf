"""What `ledgerline up` starts and with which settings: the plan of the embedded stack.

Set-up (paths, the services' listening sockets, secrets, child environments); running it is services.up's job.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

from services.common.lifecycle import listen
from services.embedded.ports import local_address
from services.embedded.supervisor import ChildSpec
from shared.config import ENV_PREFIX, Settings
from shared.errors import LedgerlineError

SERVICES = ("gateway", "delivery", "projections", "tickets")
WORKERS = SERVICES[1:]

# The whole stack stops within 10 s (the contract): services get 5 s to drain, are killed at 6 s,
# and the embedded NATS, stopped after them, gets 2.5 s more.
CHILD_SHUTDOWN_TIMEOUT = 5.0
CHILD_KILL_AFTER = 6.0
NATS_KILL_AFTER = 2.5

JWT_SECRET_FILE = "jwt_secret"


class StackError(LedgerlineError):
    """`up` cannot start; the message says what to do."""


@dataclass(frozen=True, slots=True)
class StackPlan:
    """`sockets`: each service's listening socket, bound here and held by `up` for the stack's life.
    A child serves on the one it inherits (LEDGERLINE_LISTEN_FD), so no other process can take its
    port between planning and starting, nor while a crashed child restarts (a port chosen but left
    unbound once went to another process in CI, and projections crash-looped on it)."""

    data_dir: Path
    log_dir: Path
    database_url: str
    jwt_secret: str | None
    gateway_host: str
    gateway_port: int
    sockets: Mapping[str, socket.socket]
    shutdown_timeout: float

    @property
    def worker_ports(self) -> Mapping[str, int]:
        return {name: self.sockets[name].getsockname()[1] for name in WORKERS}

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()

    @property
    def gateway_url(self) -> str:
        return f"http://{local_address(self.gateway_host)}:{self.gateway_port}"

    def health_url(self, service: str) -> str:
        if service == "gateway":
            return self.gateway_url
        return f"http://127.0.0.1:{self.worker_ports[service]}"


def plan_stack(settings: Settings) -> StackPlan:
    """The plan, with every service's socket bound; the caller closes them (StackPlan.close)."""
    data_dir = settings.data_dir.resolve()
    jwt_secret = None if settings.jwt_public_key_file else settings.jwt_secret or ensure_jwt_secret(data_dir)
    sockets = {"gateway": _gateway_socket(settings.gateway_host, settings.gateway_port)}
    try:
        for name in WORKERS:
            sockets[name] = listen("127.0.0.1", 0)
    except OSError:
        for sock in sockets.values():
            sock.close()
        raise
    return StackPlan(
        data_dir=data_dir,
        log_dir=data_dir / "logs",
        database_url=settings.resolved_database_url,
        jwt_secret=jwt_secret,
        gateway_host=settings.gateway_host,
        gateway_port=sockets["gateway"].getsockname()[1],
        sockets=sockets,
        shutdown_timeout=min(settings.shutdown_timeout, CHILD_SHUTDOWN_TIMEOUT),
    )


def _gateway_socket(host: str, port: int) -> socket.socket:
    try:
        return listen(host, port)
    except OSError as e:
        raise StackError(
            f"port {port} on {host} is in use: choose another with --port PORT (or {ENV_PREFIX}GATEWAY_PORT)"
            if e.errno == errno.EADDRINUSE
            else f"cannot listen on {host}:{port}: {e.strerror}"
        ) from None


def ensure_jwt_secret(data_dir: Path) -> str:
    """The secret kept in `<data_dir>/jwt_secret` (mode 0600), generated on first use."""
    path = data_dir / JWT_SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # tighten a copy restored with looser rights
        secret = path.read_text().strip()
        if not secret:
            raise StackError(f"{path} is empty: delete it to have a new secret generated") from None
        return secret
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold `<data_dir>/up.lock` while `up` runs: two stacks on one SQLite file and one JetStream
    store would corrupt neither quickly nor visibly, so the second one is refused at once."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / "up.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise StackError(f"another `ledgerline up` (pid {holder}) uses {data_dir}") from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def child_specs(plan: StackPlan, broker_url: str, environ: Mapping[str, str]) -> list[ChildSpec]:
    common = {
        **environ,
        "PYTHONUNBUFFERED": "1",
        f"{ENV_PREFIX}DATA_DIR": str(plan.data_dir),
        f"{ENV_PREFIX}DATABASE_URL": plan.database_url,
        f"{ENV_PREFIX}BROKER_URL": broker_url,
        f"{ENV_PREFIX}GATEWAY_HOST": plan.gateway_host,
        f"{ENV_PREFIX}GATEWAY_PORT": str(plan.gateway_port),
        f"{ENV_PREFIX}SHUTDOWN_TIMEOUT": str(plan.shutdown_timeout),
    }
    if plan.jwt_secret is not None:
        common[f"{ENV_PREFIX}JWT_SECRET"] = plan.jwt_secret
    specs = []
    for name in SERVICES:
        fd = plan.sockets[name].fileno()
        env = {**common, f"{ENV_PREFIX}LISTEN_FD": str(fd)}
        if name != "gateway":
            env[f"{ENV_PREFIX}WORKER_PORT"] = str(plan.worker_ports[name])  # named in its logs
        argv = [sys.executable, "-m", "services.cli", name]
        specs.append(ChildSpec(name, argv, env, plan.log_dir / f"{name}.log", pass_fds=(fd,)))
    return specs


def redact(url: str) -> str:
    """A URL fit to print: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (nats://, amqp://): same rule by hand
        scheme, sep, rest = url.partition("://")
        creds, at, host = rest.rpartition("@")
        if not at or ":" not in creds:
            return url
        return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
