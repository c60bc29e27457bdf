"""Liveness and readiness, the same on every service.

- `/healthz`: the process runs its event loop (nothing else is checked: a restart would not help a
  database that is down).
- `/readyz`: every dependency answers (database, broker, worker loop…), each within CHECK_TIMEOUT;
  503 with a problem+json body naming what is down, and 503 as soon as the service is stopping, so
  that a load balancer drains it first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.common.problems import problem_response
from shared.logging import get_logger
from shared.metrics import MetricsRegistry

log = get_logger(__name__)

Check = Callable[[], Awaitable[bool]]
"""True when the dependency is usable; False or an exception when it is not."""

# A probe that takes longer than this is as good as down: an orchestrator probes every few seconds.
CHECK_TIMEOUT = 2.0


class Readiness:
    """The named checks of one service."""

    def __init__(self, timeout: float = CHECK_TIMEOUT) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout = timeout
        self._stopping = False

    def add(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def mark_stopping(self) -> None:
        self._stopping = True

    async def evaluate(self) -> dict[str, str]:
        """Each check's state: "ok", or why it is down."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run(name) for name in names))
        states = dict(zip(names, results, strict=True))
        if self._stopping:
            states["service"] = "stopping"
        return states

    async def _run(self, name: str) -> str:
        # Not asyncio.wait_for: it waits for the cancelled check to unwind, and a check stuck on a
        # silent connection (a network partition: no reset, no answer) unwinds only when its driver
        # gives up on closing that connection, seconds later; the probe would then answer after the
        # orchestrator's own timeout, or not at all. The check is cancelled and left to finish.
        check = asyncio.ensure_future(self._checks[name]())
        done, _ = await asyncio.wait({check}, timeout=self._timeout)
        if not done:
            check.cancel()
            check.add_done_callback(_retrieve)
            return f"no answer within {self._timeout} s"
        try:
            ok = check.result()
        except Exception as e:
            log.info("readiness_check_failed", check=name, error=repr(e))
            return f"{type(e).__name__}: {e}"[:300]
        return "ok" if ok else "unhealthy"


def _retrieve(task: asyncio.Future[bool]) -> None:
    """Collect an abandoned check's outcome, so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def readyz_endpoint(readiness: Readiness) -> Callable[[Request], Awaitable[Response]]:
    async def readyz(_request: Request) -> Response:
        checks = await readiness.evaluate()
        down = [name for name, state in checks.items() if state != "ok"]
        if not down:
            return JSONResponse({"status": "ready", "checks": checks})
        return problem_response(503, detail="not ready: " + ", ".join(down), extra={"down": down, "checks": checks})

    return readyz


def metrics_endpoint(metrics: MetricsRegistry) -> Callable[[Request], Awaitable[Response]]:
    async def render_metrics(_request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return render_metrics
