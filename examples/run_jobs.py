"""Example jobs reporting to a jobpulse sidecar (JOBPULSE_URL, default http://127.0.0.1:8484).

Runs until Ctrl-C (or SIGTERM). A BlockingScheduler runs the jobs and the APScheduler
integration reports them: each job under its job id, its trigger declared as its schedule, each
run with the slot it was scheduled for (examples/jobpulse.yaml configures the same jobs).
reconcile-invoices runs after each import that succeeds and reports through the decorator.
"""

from __future__ import annotations

import random
import signal
import time
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler

from jobpulse.instrumentation import get_client, monitor
from jobpulse.instrumentation.apscheduler import instrument, progress, uninstrument

scheduler = BlockingScheduler(timezone="UTC")


def sync_users() -> int:
    time.sleep(random.uniform(0.2, 1.5))
    return random.randint(10, 500)


def refresh_cache() -> None:
    time.sleep(random.uniform(0.1, 0.6))


def import_invoices() -> None:
    time.sleep(random.uniform(0.5, 2.0))
    if random.random() < 0.3:
        raise ConnectionError("invoice API answered 503 Service Unavailable")
    # A task chain: reconcile what was imported, once the import succeeded. jobpulse.yaml
    # declares `after: [import-invoices]`, so a failed import skips it instead of paging.
    reconcile_invoices()


@monitor("reconcile-invoices")
def reconcile_invoices() -> None:
    time.sleep(random.uniform(0.2, 1.0))


def rebuild_search_index() -> None:
    # A long job: progress heartbeats keep it from going stale (heartbeat_timeout: 1m).
    for batch in range(5):
        time.sleep(random.uniform(0.5, 1.0))
        message = f"indexed batch {batch + 1}/5"
        progress(scheduler, "rebuild-search-index", message, count=(batch + 1) * 1000)


def main() -> None:
    scheduler.add_job(sync_users, "interval", seconds=20, id="sync-users")
    scheduler.add_job(refresh_cache, "cron", minute="*", id="refresh-cache")
    scheduler.add_job(import_invoices, "cron", minute="*/2", id="import-invoices")
    scheduler.add_job(rebuild_search_index, "cron", minute="*/3", id="rebuild-search-index")
    instrument(scheduler)

    def stop(*_: Any) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    print("example jobs running; Ctrl-C to stop", flush=True)
    try:
        scheduler.start()
    except KeyboardInterrupt:
        pass
    finally:
        uninstrument(scheduler)
        get_client().flush(2.0)


if __name__ == "__main__":
    main()
