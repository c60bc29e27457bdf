"""structlog set-up: JSON (or console) lines carrying the service name and, when bound, the correlation id.

Context (correlation id, event id, stream) travels in contextvars, so handlers bind it once and every
log line below them carries it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_configured_for: str | None = None


def configure_logging(service: str, level: str = "info", fmt: str = "json") -> None:
    """Route structlog and stdlib logging to stderr as one line per record."""
    global _configured_for
    _configured_for = service
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service),
    ]
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]  # write+flush suffice
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, aio-pika, alembic) log through stdlib logging: render them the same way.
    handler = _CurrentStderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared_processors, processor=renderer))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class _CurrentStderr:
    """Whatever sys.stderr is when a line is written, not when logging was configured: a test
    runner (or a daemonizing wrapper) may replace sys.stderr later, and writing to the one it closed
    would raise in the middle of whatever was logging."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """logging's StreamHandler, resolving sys.stderr at each record (see _CurrentStderr)."""

    def __init__(self) -> None:
        super().__init__(_CurrentStderr())


def _add_service(service: str) -> Any:
    def processor(_logger: object, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def bind_context(**values: object) -> None:
    """Bind values (correlation_id, event_id, stream_id …) to every log line of the current task."""
    structlog.contextvars.bind_contextvars(**values)


def clear_context() -> None:
    structlog.contextvars.clear_contextvars()
