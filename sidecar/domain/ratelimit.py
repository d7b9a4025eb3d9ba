"""Per-job event rate limit: a token bucket per job name (``rate_limit`` events/s, 0 = off).

Each job's bucket holds up to ``burst`` tokens (default: one second's worth, at least 1) and
refills at ``rate`` tokens a second; an event takes one token. How ingest answers:

- ``POST /api/v1/events``: events over their job's limit are rejected one by one with reason
  ``rate_limit`` inside a 200 answer, as other per-event rejections are; when *every* event of
  the request is over its limit, the answer is ``429`` with ``Retry-After`` (nothing was taken);
- pings: over the limit is ``429`` with ``Retry-After``.

Buckets live in the replica's memory: behind a load balancer spreading requests over N replicas
a job may get up to N times the rate. Full buckets are forgotten, so the map stays small.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter"]

_SWEEP_EVERY = 4096  # takes between sweeps of full buckets


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._takes = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        return bucket

    def take(self, key: str) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty (over the limit)."""
        if not self.enabled:
            return True
        now = self._clock()
        self._takes += 1
        if self._takes % _SWEEP_EVERY == 0:
            self._sweep(now)
        bucket = self._bucket(key, now)
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may send one event again (at least 1)."""
        if not self.enabled:
            return 0
        bucket = self._bucket(key, self._clock())
        return max(1, math.ceil((1.0 - bucket.tokens) / self.rate))

    def _sweep(self, now: float) -> None:
        full = [
            key
            for key, b in self._buckets.items()
            if b.tokens + (now - b.at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
