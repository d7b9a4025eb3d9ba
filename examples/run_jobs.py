"""Example jobs reporting to a jobpulse sidecar (JOBPULSE_URL, default http://127.0.0.1:8484).

Runs until Ctrl-C. Each job is a plain function with the jobpulse decorator; a tiny loop plays
the scheduler (examples/apscheduler_app.py shows the same with APScheduler).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cronsim import CronSim

from jobpulse.instrumentation import get_client, monitor


@monitor("sync-users", every="20s")
def sync_users() -> int:
    time.sleep(random.uniform(0.2, 1.5))
    return random.randint(10, 500)


@monitor("refresh-cache", schedule="* * * * *")
def refresh_cache() -> None:
    time.sleep(random.uniform(0.1, 0.6))


@monitor("import-invoices", schedule="*/2 * * * *")
def import_invoices() -> None:
    time.sleep(random.uniform(0.5, 2.0))
    if random.random() < 0.3:
        raise ConnectionError("invoice API answered 503 Service Unavailable")


search_index = monitor("rebuild-search-index", schedule="*/3 * * * *")


def rebuild_search_index() -> None:
    # The context-manager form hands out the run, for progress heartbeats.
    with search_index as run:
        for batch in range(5):
            time.sleep(random.uniform(0.5, 1.0))
            run.progress(message=f"indexed batch {batch + 1}/5", count=(batch + 1) * 1000)


def cron_times(expr: str) -> Callable[[], float]:
    it = CronSim(expr, datetime.now(UTC))
    return lambda: next(it).timestamp()


def every(seconds: float) -> Callable[[], float]:
    state = {"next": time.time()}

    def nxt() -> float:
        state["next"] += seconds
        return state["next"]

    return nxt


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    plan: list[tuple[Callable[[], object], Callable[[], float]]] = [
        (sync_users, every(20)),
        (refresh_cache, cron_times("* * * * *")),
        (import_invoices, cron_times("*/2 * * * *")),
        (rebuild_search_index, cron_times("*/3 * * * *")),
    ]
    due = [(nxt(), i) for i, (_, nxt) in enumerate(plan)]
    print("example jobs running; Ctrl-C to stop", flush=True)
    try:
        while not stop.is_set():
            due.sort()
            when, index = due[0]
            if stop.wait(max(0.0, when - time.time())):
                break
            job, nxt = plan[index]
            threading.Thread(target=_run, args=(job,), daemon=True).start()
            due[0] = (nxt(), index)
    except KeyboardInterrupt:
        pass
    get_client().flush(2.0)


def _run(job: Callable[[], object]) -> None:
    try:
        job()
    except ConnectionError as exc:
        print(f"{job.__name__} failed: {exc}", flush=True)


if __name__ == "__main__":
    main()
