"""A Celery app with beat entries, reported to jobpulse (run the commands in README.md)."""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta
from typing import Any

from celery import Celery
from celery.schedules import crontab

from jobpulse.instrumentation.celery import instrument

app = Celery("shop", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.timezone = "Europe/Riga"
app.conf.beat_schedule = {
    # Reported as job "close-daily-books" with schedule "15 0 * * *" in Europe/Riga.
    "close-daily-books": {"task": "shop.close_books", "schedule": crontab(minute=15, hour=0)},
    # Weekdays: Celery's day_of_week counts from Sunday = 0, as cron does → "*/5 * * * 1-5".
    "sync-stock": {
        "task": "shop.sync_stock",
        "schedule": crontab(minute="*/5", day_of_week="mon-fri"),
    },
    "poll-payments": {"task": "shop.poll_payments", "schedule": timedelta(seconds=30)},
}
instrument(app)  # the worker and the beat process both import this module


@app.task(name="shop.close_books")
def close_books() -> None:
    time.sleep(random.uniform(1, 3))


@app.task(name="shop.sync_stock", bind=True, max_retries=3)
def sync_stock(self: Any) -> None:
    if random.random() < 0.3:
        # Each retried attempt is reported as `retry`, not as a failure.
        raise self.retry(exc=ConnectionError("warehouse API timed out"), countdown=5)


@app.task(name="shop.poll_payments")
def poll_payments() -> int:
    time.sleep(random.uniform(0.1, 0.5))
    return random.randint(0, 20)
