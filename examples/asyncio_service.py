"""A long-lived asyncio consumer supervised by jobpulse.

    JOBPULSE_URL=http://127.0.0.1:8484 python examples/asyncio_service.py

Each crash is reported as a failure with its traceback and the loop is restarted with backoff
(1 s, 2 s, 4 s ... up to 60 s). Each batch sends a progress heartbeat; with heartbeat_timeout
declared, a consumer that hangs without crashing goes stale in the sidecar.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from jobpulse.instrumentation import get_client
from jobpulse.instrumentation.asyncio import current_supervisor, supervise


async def consume_orders(batch_size: int) -> None:
    supervisor = current_supervisor()
    handled = 0
    while True:
        await asyncio.sleep(random.uniform(0.5, 2.0))  # waiting for a batch
        if random.random() < 0.05:
            raise ConnectionResetError("the broker closed the connection")
        handled += batch_size
        supervisor.beat(f"handled {handled} orders", count=handled)


async def main() -> None:
    supervisor = supervise("order-consumer", consume_orders, 50, heartbeat_timeout="30s")
    print("order-consumer running; Ctrl-C to stop", flush=True)
    try:
        await supervisor.task
    finally:
        await supervisor.stop()
        get_client().flush(2.0)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
