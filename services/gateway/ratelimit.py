"""Requests per user per minute: a token bucket per user, in this gateway process only.

Each instance keeps its own buckets, so N gateways behind a balancer allow up to N times the
configured rate to a user who is spread over all of them (documented in docs/chat-api.md); the
limit is a guard against a runaway client, not an accounting of use. Buckets of users not seen for
a while are dropped so the map does not grow with every user ever seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from services.gateway.problems import RateLimited

# Idle buckets are full again after a minute; keeping them longer would only cost memory.
_IDLE_SECONDS = 60.0
_SWEEP_EVERY = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`per_minute` requests a minute, with bursts up to `per_minute` (0: no limit)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._calls = 0

    def check(self, user_id: str) -> None:
        """Take one token from the user's bucket, or raise RateLimited with the wait for the next."""
        if self._capacity <= 0:
            return
        now = self._clock()
        self._sweep(now)
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = _Bucket(self._capacity, now)
        bucket.tokens = min(self._capacity, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        if bucket.tokens < 1.0:
            raise RateLimited((1.0 - bucket.tokens) / self._rate)
        bucket.tokens -= 1.0

    def _sweep(self, now: float) -> None:
        self._calls += 1
        if self._calls % _SWEEP_EVERY:
            return
        idle = [user for user, b in self._buckets.items() if now - b.at > _IDLE_SECONDS]
        for user in idle:
            del self._buckets[user]
