"""Report asyncio background work to jobpulse.

    from jobpulse.instrumentation.asyncio import current_supervisor, supervise

    async def consume() -> None:
        while True:
            batch = await queue.get()
            ...
            current_supervisor().beat(count=len(batch))

    supervisor = supervise("order-consumer", consume, heartbeat_timeout="2m")

:func:`supervise` keeps a long-lived coroutine running (each crash a ``failure`` run with its
traceback, restarted with exponential backoff); :func:`watch` reports an existing task as one run.
"""

from __future__ import annotations

from .supervise import Backoff, Supervisor, current_supervisor, supervise
from .watch import watch

__all__ = ["Backoff", "Supervisor", "current_supervisor", "supervise", "watch"]
