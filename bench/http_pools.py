"""HTTP clients for the load a bench sends: several small connection pools instead of one big one.

httpcore's pool looks at every connection it holds for each request it assigns (has_expired, a
socket poll each): one pool of 136 connections cost ~90 % of a load generator's CPU (py-spy, see
docs/benchmarks.md), and one of 64–72 made the chat and realtime benches measure their own client
(~50 msgs/s against a gateway that took ~320/s from wrk, 2026-12-02). SHARDS pools, each with its
share of the in-flight cap, cost far less.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

SHARDS = 8


@contextlib.asynccontextmanager
async def sharded_clients(
    url: str, in_flight: int, *, timeout: float = 30.0, shards: int = SHARDS
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`shards` clients of `url` sharing `in_flight` connections; send request i through `clients[i % shards]`."""
    per = max(1, in_flight // shards)
    limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits))
            for _ in range(shards)
        ]
