"""Query parameter types shared by the routes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BeforeValidator

_NUMBER = re.compile(r"\s*[+-]?\d+(\.\d*)?\s*")


def _iso_8601_only(value: Any) -> Any:
    """pydantic also reads a bare number as Unix time ("342" -> 1970-01-01T00:05:42Z); the OpenAPI
    document promises an ISO 8601 date-time, and a client that sent a number most likely meant
    something else (found by schemathesis, tests/fuzz/test_fuzz_openapi.py)."""
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        raise ValueError("must be an ISO 8601 date-time, such as 2026-12-01T09:00:00Z")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_8601_only)]
"""A date-time query parameter: ISO 8601 text only."""
