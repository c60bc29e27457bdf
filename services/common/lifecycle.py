"""How a service process lives: start, run until SIGTERM or SIGINT, stop gracefully within a deadline.

A service is an async function `serve(settings, stop)` that starts its parts, waits for `stop`, and
then stops its parts in order. run_service() wraps it: settings, logging, migrations, signals, the
deadline (`LEDGERLINE_SHUTDOWN_TIMEOUT`), and the exit code (0 after a requested stop, 1 otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

import uvicorn

from services.common.database import prepare_database
from shared import heap
from shared.config import ENV_PREFIX, Settings, load_settings
from shared.errors import ConfigError
from shared.logging import configure_logging, get_logger

log = get_logger(__name__)

Serve = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

T = TypeVar("T")


def run_service(name: str, serve: Serve) -> int:
    """The body of every `ledgerline <service>` command. ConfigError propagates to the CLI."""
    settings = load_settings()
    configure_logging(name, settings.log_level, settings.log_format)
    quiet_library_loggers()
    prepare_database(settings)
    return _run(_serve_until_stopped(name, settings, serve))


def quiet_library_loggers() -> None:
    """Lines that say nothing to an operator: alembic lists its plugins at every start, httpx logs
    every request (health polls)."""
    for name in ("alembic.runtime.plugins", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _run(main: Coroutine[Any, Any, int]) -> int:
    try:  # uvloop is an optional speed-up (see BASELINES): the services run without it
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def _serve_until_stopped(name: str, settings: Settings, serve: Serve) -> int:
    stop = asyncio.Event()
    received: list[signal.Signals] = []
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, _on_signal, sig, stop, received)
    log.info("service_started", pid=os.getpid())
    task = asyncio.create_task(serve(settings, stop), name=f"serve-{name}")
    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    if not stop.is_set():
        stop.set()  # the service ended by itself: that is a failure, whatever it raised
        await _report_unexpected_end(task)
        return 1
    started = time.monotonic()
    log.info("service_stopping", signal=received[0].name if received else None)
    try:
        await asyncio.wait_for(task, settings.shutdown_timeout)
    except TimeoutError:
        log.error("service_stop_deadline_passed", seconds=settings.shutdown_timeout)
        return 1
    log.info("service_stopped", seconds=round(time.monotonic() - started, 3))
    return 0


def _on_signal(sig: signal.Signals, stop: asyncio.Event, received: list[signal.Signals]) -> None:
    received.append(sig)
    if len(received) > 1:
        log.warning("service_signal_repeated", signal=sig.name, note="already stopping")
    stop.set()


async def _report_unexpected_end(task: asyncio.Task[None]) -> None:
    try:
        await task
    except ConfigError:
        raise  # a setting found wrong only once connected (e.g. LEDGERLINE_NATS_REPLICAS): the CLI names it, exit 2
    except Exception:
        log.exception("service_failed")
    else:
        log.error("service_ended_unexpectedly")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service's stop event decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn answers a failed lifespan start-up with sys.exit(3) inside a task, which escapes the
        # event loop unreported; an exception lets the service report it (and exit 1, or 2 for settings).
        try:
            await super().startup(sockets)
        except SystemExit as e:
            raise HttpStartupFailed(
                f"the application did not start (uvicorn exit {e.code}); see the lines above"
            ) from None
        heap.settle()  # the app and its lifespan's parts are built: they live as long as the process


class HttpStartupFailed(RuntimeError):
    """The ASGI app's lifespan start-up failed (its error is logged just before)."""


def listen(host: str, port: int, inherited_fd: int | None = None) -> socket.socket:
    """Bind the listening socket ourselves, so that a busy port is an OSError naming host and port
    here, instead of uvicorn's sys.exit(1) inside the event loop.

    `inherited_fd` (LEDGERLINE_LISTEN_FD): a socket the parent bound and keeps open (`ledgerline up`),
    served as it is. The parent holding it means no other process can take the port between the
    parent choosing it and the child starting, nor while a crashed child is being restarted."""
    if inherited_fd is not None:
        return _inherited_socket(inherited_fd)
    try:
        return socket.create_server((host, port), reuse_port=False)
    except OSError as e:
        raise OSError(e.errno, f"cannot listen on {host}:{port}: {e.strerror}") from e


def _inherited_socket(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as e:
        raise ConfigError([f"{ENV_PREFIX}LISTEN_FD={fd}: not an open socket ({e.strerror})"]) from e
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()  # not ours to close
        raise ConfigError([f"{ENV_PREFIX}LISTEN_FD={fd}: not a listening TCP socket"])
    return sock


async def serve_http(
    app: Any,
    sock: socket.socket,
    stop: asyncio.Event,
    grace: float,
    on_stopping: Callable[[], None] | None = None,
) -> None:
    """Serve an ASGI app on `sock` until `stop` is set; open requests get `grace` seconds to finish.
    `on_stopping` runs first (e.g. to turn /readyz to 503)."""
    config = uvicorn.Config(
        app,
        log_config=None,  # records go through the service's structlog set-up
        access_log=False,  # health probes every few seconds would drown the useful lines
        lifespan="on",
        ws="websockets-sansio",  # uvicorn's "auto" picks its legacy websockets protocol, deprecated in websockets 17
        # Frames are small JSON (a few hundred bytes): per-message deflate saved little on the wire and
        # cost each frame a zlib pass and each socket its compression state (docs/realtime.md).
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=max(1, int(grace)),
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    stop_wait = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    stop_wait.cancel()
    if on_stopping is not None:
        on_stopping()
    if not server.started and not serving.done():
        # Still starting (the app's lifespan waits, e.g. for its broker): no request to drain. uvicorn
        # would finish starting first, however long that takes; the lifespan is cancelled at exit.
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        log.info("service_stopped_while_starting")
        # The lifespan task is cancelled when the event loop closes; uvicorn would log that expected
        # cancellation as an error with its traceback.
        logging.getLogger("uvicorn.error").disabled = True
        return
    server.should_exit = True
    await serving


class StoppedWhileStarting(Exception):
    """The stop was requested before a start-up step finished (see unless_stopped)."""


async def unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T:
    """`work`'s result, or StoppedWhileStarting (with `work` cancelled) if `stop` is set first: a
    start-up step that waits for a server (a broker being down) must not outlast SIGTERM's deadline."""
    task = asyncio.ensure_future(work)
    stop_wait = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_wait.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.info("service_stopped_while_starting")
        raise StoppedWhileStarting
    return task.result()
