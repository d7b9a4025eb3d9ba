"""Retry delays: exponential backoff with full jitter, capped, honouring ``Retry-After``.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of many
clients that lost the sidecar at the same moment, so they do not return in lockstep.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

__all__ = ["Backoff", "retry_after_seconds"]

MAX_RETRY_AFTER: Final = 300.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry number ``attempt`` (1 for the first retry)."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random, *, retry_after: float | None = None) -> float:
        ceiling = min(self.cap, self.base * 2 ** max(0, min(attempt - 1, 32)))
        delay = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            # The sidecar said when: wait at least that long, within reason.
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header's delay in seconds; None when absent, negative or an HTTP date
    (the caller's own backoff decides then)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
